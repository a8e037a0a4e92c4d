"""Config: the file, the ``--KEY VALUE`` extras, overrides and ``setup_config``, layered.

Layers, later wins: config file → command-line extras → programmatic overrides →
``setup_config(config)``. The merged result is validated against ``config_model`` once,
after the last layer, because ``setup_config`` may supply required keys.

Values that JSON cannot express are coerced towards the ``config_model`` type for the file
and the extras only (a ``Decimal`` from a JSON number or string, a ``datetime``/``date``/
``time``/``UUID`` from an ISO string, a ``tuple``/``set`` from a JSON array, non-string dict
keys from their string form). Nothing else is coerced: ``"5555"`` in the file for an ``int``
key stays a type error rather than being guessed at. Overrides and the ``setup_config``
result are taken as already typed.
"""

from __future__ import annotations

import collections.abc as cabc
import enum
import json
import os
import re
import shlex
import types
import uuid
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from ..errors import ArgumentError, ConfigArgumentError, ConfigError
from ..logs import get_logger
from ..wire.forms import allows_non_finite, is_secret, translate_type, type_name, unwrap_secret
from ..wire.validation import ArgsChecker, make_predicate, parse_decimal
from .files import read_json

__all__ = ["Extras", "REDACTED", "build_config", "coerce_json", "convert_value",
           "flatten_sections", "is_secret_key", "load_config_file", "parse_extras",
           "redact_config", "secret_keys"]

# Config keys whose values are never written down (trace headers, error messages): those
# named like a secret, and those the model marks `Secret[...]`.
_SECRET_NAME = re.compile(r"pass(word|wd|phrase)?|token|secret|key|credential", re.IGNORECASE)
REDACTED = "***"


def is_secret_key(key: object) -> bool:
    return isinstance(key, str) and _SECRET_NAME.search(key) is not None


def secret_keys(config_model: Mapping | None) -> frozenset[str]:
    """The keys of `config_model` whose values are secret (by name or `Secret[...]`)."""
    if not isinstance(config_model, Mapping):
        return frozenset()
    required, optional = _model_forms(config_model)
    forms = {**(required or {}), **(optional or {})}
    return frozenset(key for key, form in forms.items() if is_secret(form) or is_secret_key(key))


def redact_config(config: Mapping, secret: frozenset[str] = frozenset()) -> dict:
    """A copy of `config` with every secret value replaced by `REDACTED` (at any depth by
    name; `secret` names top-level keys the model marks) and no `security` section."""
    def clean(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {key: REDACTED if is_secret_key(key) else clean(item)
                    for key, item in value.items() if key != "security"}
        return value

    return {key: REDACTED if key in secret else clean_value
            for key, clean_value in clean(dict(config)).items()}

_SECTIONS = ("required", "optional")
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}
_NULL = {"none", "null"}
_NONE = type(None)
_ISO = {datetime: datetime.fromisoformat, date: date.fromisoformat, time: time.fromisoformat}


def load_config_file(path: str | os.PathLike) -> dict:
    """Read a JSON config file (flat, or with required/optional sections) into a flat dict."""
    data = read_json(path, "config file")
    if not isinstance(data, dict):
        raise ConfigError(f"config file {os.fspath(path)}: expected a JSON object, "
                          f"got {type(data).__name__}")
    return flatten_sections(data, where=f"config file {os.fspath(path)}")


def flatten_sections(config: Mapping, *, where: str = "config") -> dict:
    """Flatten ``{'required': {...}, 'optional': {...}}`` sections into one flat dict.

    A top-level ``required``/``optional`` key whose value is a dict is a section; other
    keys are kept as they are (a config may mix both). A key given twice is an error.
    Returns a new dict.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(f"{where}: expected a dict, got {type(config).__name__}")
    flat: dict = {}
    sections = [k for k in _SECTIONS if isinstance(config.get(k), Mapping)]
    for key, value in config.items():
        if key not in sections:
            flat[key] = value
    for section in sections:
        for key, value in config[section].items():
            if key in flat:
                raise ConfigError(f"{where}: config key {key!r} is given more than once "
                                  f"(in the {section!r} section and elsewhere)")
            flat[key] = value
    return flat


class Extras(dict):
    """Config extras from the command line. `bare` names the keys given 0.0.12's way, as a
    bare ``KEY VALUE`` pair: `build_config` accepts them (with a deprecation warning) only
    when every one is a key of ``config_model``."""

    bare: tuple[str, ...] = ()


def _unexpected(token: str) -> ConfigError:
    return ConfigError(f"unexpected command-line argument {token!r}: extra config values "
                       f"are given as --KEY VALUE or --KEY=VALUE")


def parse_extras(tokens: list[str], *, allow_bare: bool = False) -> dict[str, str]:
    """Parse ``--KEY VALUE`` / ``--KEY=VALUE`` / ``--FLAG`` tokens (a flag means 'true').

    A value may start with a single dash (``--offset -5``); a value starting with ``--``
    must use the ``--KEY=VALUE`` form. A key given twice: the last one wins.
    With `allow_bare` (the CLI), 0.0.12's bare ``KEY VALUE`` pairs are parsed too and their
    keys listed in the result's `bare` (an `Extras`); `build_config` decides on them.
    """
    extras = Extras()
    bare: list[str] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if not token.startswith("--"):
            following = tokens[index + 1] if index + 1 < len(tokens) else None
            if (not allow_bare or token.startswith("-") or following is None
                    or following.startswith("--")):
                raise _unexpected(token)
            extras[token] = following
            bare.append(token)
            index += 2
            continue
        key, has_value, value = token[2:].partition("=")
        if not has_value:
            following = tokens[index + 1] if index + 1 < len(tokens) else None
            if following is not None and not following.startswith("--"):
                value, index = following, index + 1
            else:
                value = "true"
        if not key:
            raise ConfigError(f"command-line argument {token!r} has no key name")
        extras[key] = value
        index += 1
    extras.bare = tuple(dict.fromkeys(bare))
    return extras


def _check_bare(extras: Mapping[str, str], forms: Mapping | None) -> None:
    """0.0.12's bare ``KEY VALUE`` extras: kept, with one deprecation warning, when every
    bare key is in ``config_model``; otherwise the error a stray argument always gets."""
    bare = getattr(extras, "bare", ())
    if not bare:
        return
    unknown = [key for key in bare if forms is None or key not in forms]
    if unknown:
        raise ConfigError(f"{_unexpected(unknown[0])} (a bare KEY VALUE pair, 0.0.12's "
                          f"spelling, is accepted only for a key of config_model)")
    spelled = " ".join(f"--{key} {shlex.quote(extras[key])}" for key in bare)
    get_logger().warning("deprecated: bare command-line config %s (0.0.12's spelling); "
                         "write %s", ", ".join(repr(key) for key in bare), spelled)


def convert_value(key: str, raw: str, form: Any) -> Any:
    """Convert a command-line string to the type `form` (a model type form) of config `key`.

    Scalars by their type (bool from true/false/1/0/yes/no, dates in ISO 8601), containers
    and typing generics from JSON; ``Optional[X]`` converts to X, and 'none'/'null' to None.
    ``Any`` keeps the string. Raises ConfigError when the value does not convert.
    """
    form = translate_type(form, where=f"config key {key!r}")
    hidden = is_secret(form) or is_secret_key(key)
    form = unwrap_secret(form)
    try:
        value = _from_string(raw, form)
    except (ValueError, TypeError, ArithmeticError) as exc:
        explained = isinstance(exc, json.JSONDecodeError) or (
            form is Decimal or allows_non_finite(form)) and isinstance(exc, ValueError)
        reason = f" ({exc})" if explained else ""
        shown = "its value (hidden: a secret)" if hidden else repr(raw)
        raise ConfigError(f"config key {key!r}: cannot convert {shown} to "
                          f"{type_name(form)}{'' if hidden else reason}") from None
    return value


def _members(form: Any) -> tuple[Any, ...]:
    return get_args(form) if get_origin(form) in (Union, types.UnionType) else (form,)


def _from_string(raw: str, form: Any) -> Any:
    """Convert `raw` to `form`; ValueError if it does not convert (checked at the end)."""
    members = _members(form)
    if len(members) > 1:
        if _NONE in members and raw.strip().lower() in _NULL:
            return None
        # str accepts anything, so it is tried last; otherwise the declared order decides
        candidates = sorted((m for m in members if m is not _NONE), key=lambda m: m is str)
        for member in candidates:
            try:
                return _from_string(raw, member)
            except (ValueError, TypeError, ArithmeticError):
                continue
        raise ValueError(raw)
    if form is Any or form is str:
        return raw
    if form is _NONE:
        if raw.strip().lower() in _NULL:
            return None
        raise ValueError(raw)
    if form is bool:
        lowered = raw.strip().lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
        raise ValueError(raw)
    if isinstance(form, type) and issubclass(form, enum.Enum):
        for member in form:  # by name first, then by the value's string form
            if raw == member.name:
                return member
        for member in form:
            if raw == str(member.value):
                return member
        raise ValueError(raw)
    if get_origin(form) is Literal:
        for choice in get_args(form):
            text = str(choice).lower() if isinstance(choice, bool) else str(choice)
            if text == (raw.lower() if isinstance(choice, bool) else raw):
                return choice
        raise ValueError(raw)
    if form is Decimal or allows_non_finite(form):  # strict: no spaces, no underscores
        value = parse_decimal(raw, allow_non_finite=form is not Decimal)
    elif form in (int, float, uuid.UUID, Path) or form in _ISO:
        value = _scalar(raw.strip(), form)
    else:  # containers, typing generics and anything else: JSON, then coerce and check
        value = coerce_json(json.loads(raw, parse_float=Decimal), form)
    if not make_predicate(form)(value):
        raise ValueError(raw)
    return value


def _scalar(raw: str, form: Any) -> Any:
    if form in _ISO:
        return _ISO[form](raw)
    return form(raw)


def coerce_json(value: Any, form: Any) -> Any:
    """Best-effort coercion of a JSON-decoded value towards `form` (see the module doc).

    Values that cannot be coerced are returned unchanged for validation to report.
    """
    if form is Any or form is object:  # CLI JSON parses floats as Decimal; untyped: floats
        return _floats(value)
    if value is None:
        return value
    if allows_non_finite(form):
        return _decimal(value, allow_non_finite=True)
    members = _members(form)
    if len(members) > 1:
        for member in members:
            candidate = coerce_json(value, member)
            if make_predicate(member)(candidate):
                return candidate
        return value
    origin = get_origin(form) or form
    args = get_args(form)
    try:
        if origin in _ISO or origin is uuid.UUID:
            return _scalar(value, origin) if isinstance(value, str) else value
        if origin is Decimal:
            return _decimal(value, allow_non_finite=False)
        if origin is float and isinstance(value, Decimal):
            return float(value)
        if isinstance(value, list):
            item = args[0] if args else Any
            if origin in (list, cabc.Sequence, cabc.MutableSequence):
                return [coerce_json(x, item) for x in value]
            if origin in (set, frozenset, cabc.Set, cabc.MutableSet):
                return (frozenset if origin is frozenset else set)(
                    coerce_json(x, item) for x in value)
            if origin is tuple:
                if len(args) == 2 and args[1] is Ellipsis or not args:
                    return tuple(coerce_json(x, item) for x in value)
                if len(args) == len(value):
                    return tuple(coerce_json(x, f) for x, f in zip(value, args, strict=True))
        if isinstance(value, dict) and origin in (dict, cabc.Mapping, cabc.MutableMapping):
            key_form, value_form = args if len(args) == 2 else (Any, Any)
            return {_coerce_key(k, key_form): coerce_json(v, value_form)
                    for k, v in value.items()}
    except (ValueError, TypeError, ArithmeticError):
        pass
    return value


def _decimal(value: Any, *, allow_non_finite: bool) -> Any:
    """A JSON number or string as a Decimal (strictly: `parse_decimal`); else unchanged."""
    if isinstance(value, str):
        try:
            return parse_decimal(value, allow_non_finite=allow_non_finite)
        except ValueError:
            return value  # validation names the key and the expected type
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Decimal(str(value))  # a float NaN/inf from JSON is refused by validation
    return value


def _floats(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list):
        return [_floats(item) for item in value]
    if isinstance(value, dict):
        return {_floats(k): _floats(v) for k, v in value.items()}
    return value


def _coerce_key(key: Any, form: Any) -> Any:
    """JSON object keys are strings; convert them to the model's key type when it is not."""
    if not isinstance(key, str) or form is Any or form is str:
        return key
    try:
        return _from_string(key, form)
    except (ValueError, TypeError, ArithmeticError):
        return key


def _model_forms(config_model: Mapping) -> tuple[Mapping, Mapping]:
    if not isinstance(config_model, Mapping):
        raise ConfigError(f"config_model must be a dict, got {type(config_model).__name__}")
    unknown = [k for k in config_model if k not in _SECTIONS]
    if unknown:
        raise ConfigError(f"config_model has unknown section {unknown[0]!r} "
                          f"(expected 'required' and/or 'optional')")
    return config_model.get("required") or {}, config_model.get("optional") or {}


def build_config(config_model: Mapping | None, *, file_config: Mapping | None = None,
                 extras: Mapping[str, str] | None = None, overrides: Mapping | None = None,
                 setup_config: Callable | None = None) -> dict:
    """Layer and validate the config (see the module docstring for the order).

    With ``config_model`` None the config passes through unchecked and extras stay strings.
    Raises ConfigError for a bad value, an unknown key, or a missing required key.
    """
    checker = None
    forms: Mapping = {}
    if config_model is not None:
        required, optional = _model_forms(config_model)
        checker = ArgsChecker("config", required, optional, where="config_model")
        checker.hidden = secret_keys(config_model)
        forms = checker.forms
    config: dict = {}
    if file_config:
        for key, value in flatten_sections(file_config, where="config file").items():
            config[key] = coerce_json(value, unwrap_secret(forms[key])) if key in forms \
                else value
    if extras:
        _check_bare(extras, None if checker is None else forms)
    for key, raw in (extras or {}).items():
        if checker is None:
            config[key] = raw
        elif key not in forms:
            allowed = ", ".join(repr(k) for k in forms) or "none"
            raise ConfigError(f"config key {key!r} (from --{key}) is not in config_model "
                              f"(allowed keys: {allowed})")
        else:
            config[key] = convert_value(key, raw, forms[key])
    if overrides:
        config.update(flatten_sections(overrides, where="config overrides"))
    if setup_config is not None:
        try:
            result = setup_config(config)
        except (ConfigError, ArgumentError):
            raise
        except Exception as exc:  # a hook's failure is a load error naming the hook
            raise ConfigError(f"setup_config raised {type(exc).__name__}: {exc}") from exc
        if result is not None:  # None: setup_config changed nothing (or changed it in place)
            config.update(flatten_sections(result, where="setup_config result"))
    if checker is not None:
        try:
            checker.check(config)
        except ArgumentError as exc:
            raise ConfigArgumentError(str(exc)) from None
    return config
