"""The documentation runs: `mkdocs build --strict`, and every code block of `docs/` and the
README is executed or shown to be an excerpt of code the suite runs.

A block's treatment is said by an HTML comment on the line before it (CONTRIBUTING,
"Documentation"):

- ```python``` without a comment: executed, in order with the page's other such blocks, in
  one namespace, in a temporary folder holding the page's files;
- `<!-- file: NAME -->`: written to that folder as NAME (a service, addresses, a config);
- `<!-- run: pytest -->`: a test module, run by pytest (from the repository's root);
  `<!-- run: pytest-fails -->`: one that must fail with an `InvariantViolation` (a bug the
  framework finds);
- `<!-- from: PATH -->`: an excerpt: its lines appear in PATH, which the suite runs;
- `<!-- run: check -->` (sh): every `service_framework` line runs with `--check`;
- `<!-- skip: REASON -->`: not run, and the reason says why;
- ```sh``` without a comment: every line runs in that folder; ```json```: parsed;
- a block without a language is output shown, not code;
- `<!-- files-from: PAGE -->` anywhere on a page: that page's files are there too.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO

BIN = Path(sys.executable).parent
FENCE = re.compile(r"(?:<!-- (?P<kind>file|run|from|skip): (?P<arg>[^>]*?) -->\n)?"
                   r"```(?P<lang>[a-z]*)\n(?P<code>.*?)```", re.DOTALL)
FILES_FROM = re.compile(r"<!-- files-from: (\S+) -->")
PAGES = sorted((REPO / "docs").rglob("*.md")) + [REPO / "README.md"]


def blocks(page: Path) -> list[dict]:
    return [match.groupdict() for match in FENCE.finditer(page.read_text())]


def _squash(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["NO_MKDOCS_2_WARNING"] = "1"
    env.pop("PYTHONPATH", None)
    return env


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_every_code_block_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace: dict = {"__name__": f"doc_{page.stem}"}
    for other in FILES_FROM.findall(page.read_text()):  # files another page wrote
        for block in blocks(REPO / "docs" / other):
            if block["kind"] == "file":
                (tmp_path / block["arg"]).write_text(block["code"])
    for number, block in enumerate(blocks(page)):
        kind, arg, lang, code = block["kind"], block["arg"], block["lang"], block["code"]
        where = f"{page.relative_to(REPO)}, block {number}"
        if kind == "skip":
            assert arg.strip(), f"{where}: a skip needs its reason"
        elif kind == "file":
            (tmp_path / arg).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / arg).write_text(code)
        elif kind == "from":
            source = _squash((REPO / arg).read_text())
            lines = _squash(code)
            start = next((i for i in range(len(source)) if source[i:i + len(lines)] == lines),
                         None)
            assert start is not None, f"{where}: not an excerpt of {arg} (any more)"
        elif kind == "run" and arg in ("pytest", "pytest-fails"):
            test = tmp_path / f"test_doc_{page.stem}_{number}.py"
            test.write_text(code)
            result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:randomly",
                                     "-p", "no:cacheprovider", str(test)], cwd=REPO,
                                    env=_env(), capture_output=True, text=True, timeout=120)
            if arg == "pytest":
                assert result.returncode == 0, f"{where}:\n{result.stdout[-3000:]}"
            else:  # an example of a failure the framework finds: it must find it
                assert result.returncode == 1 and "InvariantViolation" in result.stdout, \
                    f"{where}:\n{result.stdout[-3000:]}"
        elif lang in ("sh", "console"):
            for line in code.splitlines():
                line = line.split(" #", 1)[0].strip()
                if not line or line.startswith("#"):
                    continue
                args = shlex.split(line)
                if kind == "run" and arg == "check" and args[0] == "service_framework":
                    args.append("--check")
                result = subprocess.run(args, cwd=REPO if kind == "run" else tmp_path,
                                        env=_env(), capture_output=True, text=True,
                                        timeout=120)
                assert result.returncode == 0, \
                    f"{where}: {line}\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
        elif lang == "json":
            json.loads(code)
        elif lang == "python":
            exec(compile(code, where, "exec"), namespace)  # noqa: S102 - our own docs


def test_the_site_builds_strictly(tmp_path):
    result = subprocess.run([str(BIN / "mkdocs"), "build", "--strict", "--site-dir",
                             str(tmp_path / "site")], cwd=REPO, env=_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_every_page_is_in_the_navigation():
    text = (REPO / "mkdocs.yml").read_text()
    for page in (REPO / "docs").rglob("*.md"):
        assert str(page.relative_to(REPO / "docs")) in text, f"{page} is not in mkdocs.yml's nav"
