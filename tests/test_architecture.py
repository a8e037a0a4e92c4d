"""The house rules of the code base, checked: layers, module sizes, and the map in CONTRIBUTING."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "service_framework"
MAX_TOP_LEVEL_MODULES = 20
MAX_MODULE_LINES = 400


def _top_level_names() -> set[str]:
    names = {path.stem for path in PACKAGE.glob("*.py")}
    names |= {path.name for path in PACKAGE.iterdir()
              if path.is_dir() and (path / "__init__.py").exists()}
    return names


def _sources() -> list[Path]:
    return sorted([*PACKAGE.rglob("*.py"), *(ROOT / "service_framework_testing").rglob("*.py")])


def test_the_import_contract_holds():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_every_top_level_module_is_in_a_layer():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    named = {part.strip().removeprefix("service_framework.")
             for layer in layers for part in re.split(r"[|:]", layer)}
    unplaced = _top_level_names() - named - {"__init__", "__main__"}
    assert not unplaced, f"modules in no layer of pyproject.toml's contract: {sorted(unplaced)}"


def test_the_top_level_stays_small_and_no_module_is_long():
    modules = [p for p in PACKAGE.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()]
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, sorted(p.name for p in modules)
    long = {str(p.relative_to(ROOT)): n for p in _sources()
            if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_contributing_maps_the_tree():
    text = (ROOT / "CONTRIBUTING.md").read_text()
    table = text[text.index("## Where things live"):]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    missing, unmapped = [], []
    for row in rows:
        paths = re.findall(r"`((?:service_framework|service_framework_testing|examples|"
                           r"benchmarks|tests)(?:/[^`\s]*)?)`", row.split("|")[1])
        for path in paths:
            folder = ROOT / path
            if not folder.exists():
                missing.append(path)
            elif folder.is_dir():  # every file the row names lives in that folder
                missing += [f"{path}{name}" for name in re.findall(r"`([\w/]+\.py)`", row)
                            if not list(folder.rglob(Path(name).name))]
    for source in _sources():
        if source.name != "__init__.py" and f"`{source.name}`" not in table and \
                f"{source.relative_to(ROOT)}`" not in table:
            unmapped.append(str(source.relative_to(ROOT)))
    assert not missing, f"CONTRIBUTING names paths that do not exist: {missing}"
    assert not unmapped, f"CONTRIBUTING's table does not say where these live: {unmapped}"
