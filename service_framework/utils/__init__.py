"""0.0.12's module paths, kept so that services written for it run unchanged.

Only what 0.0.12's services imported lives here, as thin aliases that warn once
(`DeprecationWarning`) and name the new spelling: `logging_utils.get_logger` and
`constants.PACKAGE_LOGGER_NAME`. Nothing in the framework imports this package.
See docs/migration.md.
"""

from __future__ import annotations

import os
import sys
import warnings

_HERE = os.path.dirname(os.path.abspath(__file__))


def _is_machinery(filename: str) -> bool:
    """This package, or an import system's frames: importlib's, or an import hook's
    (pytest's assertion rewriter loads this package's modules under pytest)."""
    return (os.path.dirname(os.path.abspath(filename)) == _HERE
            or filename.startswith("<frozen importlib")
            or f"{os.sep}importlib{os.sep}" in filename
            or filename.endswith(os.path.join("_pytest", "assertion", "rewrite.py")))


def warn_moved(old: str, new: str) -> None:
    """Warns that `old` is now spelled `new`, at the line of the module that imported the
    alias: once per process, since an alias module runs once."""
    message = f"{old} is 0.0.12's spelling, deprecated; write {new} (see docs/migration.md)"
    frame = sys._getframe(1)
    while frame is not None and _is_machinery(frame.f_code.co_filename):
        frame = frame.f_back
    if frame is None:
        warnings.warn(message, DeprecationWarning, stacklevel=2)
        return
    module_globals = frame.f_globals
    warnings.warn_explicit(message, DeprecationWarning, frame.f_code.co_filename,
                           frame.f_lineno, module=module_globals.get("__name__", "?"),
                           registry=module_globals.setdefault("__warningregistry__", {}),
                           module_globals=module_globals)
