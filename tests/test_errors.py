"""Every error class lives in `service_framework.errors` and is exported by the package.

A caller finds every type it may catch in one place: a new error defined elsewhere, or
defined in errors.py and not exported, fails here.
"""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import service_framework
from service_framework import errors

PACKAGE = Path(service_framework.__file__).parent
BUILTIN_EXCEPTIONS = {name for name, value in vars(builtins).items()
                      if isinstance(value, type) and issubclass(value, BaseException)}


def _classes() -> list[tuple[Path, ast.ClassDef]]:
    return [(path, node) for path in sorted(PACKAGE.rglob("*.py"))
            for node in ast.walk(ast.parse(path.read_text(), str(path)))
            if isinstance(node, ast.ClassDef)]


def _base_name(base: ast.expr) -> str:
    # `ValueError`, `errors.CodecError`, `Generic[T]` -> the class name
    if isinstance(base, ast.Subscript):
        base = base.value
    return base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")


def _exception_classes() -> list[tuple[Path, str]]:
    """(file, name) of each class in the package that derives from an exception, found by
    following base names through the package to the built-in exceptions."""
    classes = _classes()
    known = set(BUILTIN_EXCEPTIONS)
    found: dict[tuple[Path, str], None] = {}
    changed = True
    while changed:
        changed = False
        for path, node in classes:
            if (path, node.name) not in found and any(_base_name(base) in known
                                                      for base in node.bases):
                found[(path, node.name)] = None
                known.add(node.name)
                changed = True
    return list(found)


def test_every_error_class_in_errors_is_exported_by_the_package():
    defined = {name for name, value in vars(errors).items()
               if isinstance(value, type) and issubclass(value, BaseException)
               and value.__module__ == errors.__name__}
    assert defined >= {"ServiceFrameworkError", "CodecError", "ReplayDivergence"}
    missing = defined - set(service_framework.__all__)
    assert not missing, f"errors.py defines them, service_framework.__all__ lacks them: {missing}"
    for name in defined:
        assert getattr(service_framework, name) is getattr(errors, name)


def test_no_module_but_errors_defines_an_exception_class():
    found = _exception_classes()
    assert (PACKAGE / "errors.py", "ReplayDivergence") in found  # the walk sees them
    # A private control-flow signal that never leaves its module (validation's `_BadForm`,
    # service's `_MainInterrupted`) is not an error a caller could catch.
    elsewhere = sorted(f"{path.relative_to(PACKAGE)}: {name}" for path, name in found
                       if path != PACKAGE / "errors.py" and not name.startswith("_"))
    assert not elsewhere, f"error classes outside service_framework/errors.py: {elsewhere}"
