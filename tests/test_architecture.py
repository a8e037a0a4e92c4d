"""The house rules of the code base, checked: layers, module sizes, and the map in CONTRIBUTING."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import service_framework

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
    paths = re.findall(r"`((?:service_framework|service_framework_testing|examples|benchmarks|"
                       r"tests|docs|scripts)[^`]*)`", table)
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert not missing, f"CONTRIBUTING names paths that do not exist: {missing}"
    mentioned = set(re.findall(r"`([\w.]+?)(?:\.py|/)?`", table))
    unmapped = _top_level_names() - mentioned - {"__init__", "__main__"}
    assert not unmapped, f"CONTRIBUTING's table does not say where these live: {sorted(unmapped)}"


def test_every_error_class_lives_in_errors_and_is_exported():
    from service_framework import errors

    for path in _sources():
        if path == PACKAGE / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            # (a private control-flow signal, like service.py's _MainInterrupted, is no error)
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                bases = {ast.unparse(base) for base in node.bases}
                assert not any(re.search(r"(Error|Exception|Divergence|Timeout)$", b)
                               for b in bases), f"{path.name}: error class {node.name}"
    defined = {name for name, value in vars(errors).items()
               if isinstance(value, type) and issubclass(value, BaseException)
               and value.__module__ == errors.__name__}
    assert defined <= set(service_framework.__all__), defined - set(service_framework.__all__)
