"""Argument checkers: models compiled once into per-key predicates (type forms: `forms`).

Validation runs on every message: plain classes use ``isinstance`` (about an order of
magnitude faster than typeguard), only the forms that need it go through
``typeguard.check_type`` with ``ALL_ITEMS`` (its default checks only a collection's first
item). Error details are computed only after a predicate fails.

Type rules: ``bool`` is never accepted where ``int``, ``float`` or ``complex`` is asked (also
inside containers and unions); an ``int`` is accepted where ``float`` (or ``complex``) is
asked, following the PEP 484 numeric tower. ``Decimal`` means a finite decimal whose
adjusted exponent lies in the default context's range (`is_finite_decimal`), also inside
containers and unions; ``AnyDecimal`` (from `forms`) lets NaN, sNaN and Infinity through.
"""

from __future__ import annotations

import collections.abc as cabc
import re
import reprlib
import types
import typing
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Annotated, Any, Union, get_args, get_origin

from typeguard import CollectionCheckStrategy, TypeCheckError, check_type

from ..errors import ArgumentError, ModelError, TypeFormError
from .forms import allows_non_finite, map_args, translate_type, type_name

__all__ = ["ArgsChecker", "is_finite_decimal", "make_predicate", "parse_decimal"]

_NONE = type(None)
_UNIONS = (Union, types.UnionType)
_MAPPINGS = (dict, cabc.Mapping, cabc.MutableMapping)


# --- strict numbers -------------------------------------------------------------------
# typeguard accepts True for int (bool subclasses int). Inside typeguard-checked forms,
# int/float/complex are replaced by classes whose isinstance() excludes bool; they are
# named like the builtins so typeguard's messages read "is not an instance of int".


class _StrictNumberMeta(type):
    _accepts: tuple[type, ...]

    def __instancecheck__(cls, value: Any) -> bool:
        return isinstance(value, cls._accepts) and not isinstance(value, bool)


_STRICT = {
    number: _StrictNumberMeta(number.__name__, (), {"_accepts": accepts, "__module__": "builtins"})
    for number, accepts in ((int, (int,)), (float, (int, float)), (complex, (int, float, complex)))
}


# --- finite decimals --------------------------------------------------------------------
# The decimal module's default context: arithmetic or formatting past it raises or, for
# `1E+999999999999999999` formatted with `:f`, tries to build a string of 10**18 digits.
DECIMAL_EXPONENTS = (-999_999, 999_999)
_DECIMAL_LITERAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_NON_FINITE_LITERAL = re.compile(r"[+-]?(?:inf|infinity|s?nan\d*)", re.IGNORECASE)


def is_finite_decimal(value: Decimal) -> bool:
    """Finite, with an adjusted exponent in `DECIMAL_EXPONENTS` (what `Decimal` means)."""
    low, high = DECIMAL_EXPONENTS
    return value.is_finite() and low <= value.adjusted() <= high


def _in_range(value: Decimal) -> bool:  # AnyDecimal: non-finite allowed, exponents bounded
    return not value.is_finite() or is_finite_decimal(value)


def parse_decimal(text: str, *, allow_non_finite: bool = False) -> Decimal:
    """A Decimal from a strict literal: optional sign, digits, fraction, exponent.

    No underscores, no surrounding whitespace (``Decimal()`` accepts both); NaN, sNaN and
    Infinity only with `allow_non_finite`. Raises ValueError naming what is wrong.
    """
    if _DECIMAL_LITERAL.fullmatch(text):
        value = Decimal(text)
        if is_finite_decimal(value):
            return value
        low, high = DECIMAL_EXPONENTS
        raise ValueError(f"{text[:40]!r} is out of range (exponent outside {low}..{high})")
    if allow_non_finite and _NON_FINITE_LITERAL.fullmatch(text):
        return Decimal(text)
    raise ValueError(f"{text[:40]!r} is not a finite decimal literal (like -12.50 or 1E+3)")


class _DecimalMeta(type):
    _accepts: Callable[[Decimal], bool]

    def __instancecheck__(cls, value: Any) -> bool:
        return isinstance(value, Decimal) and cls._accepts(value)


# Named like the class so typeguard's messages read "is not an instance of Decimal".
_FINITE_DECIMAL = _DecimalMeta("Decimal", (), {"__module__": "decimal",
                                               "_accepts": staticmethod(is_finite_decimal)})
_RANGED_DECIMAL = _DecimalMeta("Decimal", (), {"__module__": "decimal",
                                               "_accepts": staticmethod(_in_range)})


def _strict(form: Any) -> Any:
    """The same form with int/float/complex replaced by their bool-rejecting versions and
    Decimal by the finite one (AnyDecimal stays as it is)."""
    if isinstance(form, type):
        if form in _STRICT:
            return _STRICT[form]
        if form is Decimal:
            return _FINITE_DECIMAL
    if allows_non_finite(form):
        return _RANGED_DECIMAL
    origin = get_origin(form)
    return form if origin is None else map_args(form, origin, _strict)


# --- compiled predicates ----------------------------------------------------------------
Predicate = Callable[[Any], bool]
_PROBE = type("_Probe", (), {})()  # a value of no declared type, to probe forms at load time


def _always(value: Any) -> bool:
    return True


def _plain_predicate(cls: type) -> Predicate | None:
    """A fast isinstance predicate, or None if the class needs typeguard."""
    if cls is _NONE:
        return lambda v: v is None
    if cls in _STRICT:
        accepts = _STRICT[cls]._accepts  # type: ignore[attr-defined]
        return lambda v: type(v) is cls or (isinstance(v, accepts) and not isinstance(v, bool))
    if cls is Decimal:  # is_finite_decimal, inlined: it runs for every Decimal received
        low, high = DECIMAL_EXPONENTS
        return lambda v: isinstance(v, Decimal) and v.is_finite() and low <= v.adjusted() <= high
    if typing.is_typeddict(cls) or getattr(cls, "_is_protocol", False):
        return None  # isinstance() is not meaningful (or raises) for these
    return lambda v: type(v) is cls or isinstance(v, cls)


def _compile_loop(form: Any) -> Predicate | None:
    """A predicate in plain Python for plain classes, unions of them and the builtin
    containers of such forms (a full check of a 1M-level book is a loop, not typeguard's
    walk); None for forms only typeguard checks (TypedDicts, Literals, abstract types…)."""
    if form is Any:
        return _always
    if allows_non_finite(form):
        return lambda v: isinstance(v, Decimal) and _in_range(v)
    origin = get_origin(form)
    if origin is None:
        return _plain_predicate(form) if isinstance(form, type) else None
    args = get_args(form)
    if origin is Annotated:  # metadata such as Secret changes nothing of the check
        return _compile_loop(args[0])
    if origin in _UNIONS:
        preds = [_compile_loop(m) for m in args]  # Optional[plain] is the common case
        if any(p is None for p in preds):
            return None
        return lambda v: any(p(v) for p in preds)  # type: ignore[misc]
    if origin is dict and len(args) == 2:
        key_ok, value_ok = _compile_loop(args[0]), _compile_loop(args[1])
        if key_ok is None or value_ok is None:
            return None
        return lambda v: isinstance(v, dict) and all(
            key_ok(k) and value_ok(item) for k, item in v.items())  # type: ignore[misc]
    if origin in (list, set, frozenset) and len(args) == 1 or (
            origin is tuple and len(args) == 2 and args[1] is Ellipsis):
        item_ok = _compile_loop(args[0])
        if item_ok is None:
            return None
        kind = cabc.Set if origin is set else origin  # as typeguard: set[T] takes a frozenset
        return lambda v: isinstance(v, kind) and all(map(item_ok, v))  # type: ignore[arg-type]
    return None


def _compile(form: Any) -> Predicate:
    """Compile a translated form into a predicate ``value -> bool``."""
    fast = _compile_loop(form)
    if fast is not None:
        return fast
    strict = _strict(form)
    strategy = CollectionCheckStrategy.ALL_ITEMS

    def typeguard_predicate(value: Any) -> bool:
        try:
            check_type(value, strict, collection_check_strategy=strategy)
        except TypeCheckError:
            return False
        return True

    try:  # a probe value makes typeguard reject forms it cannot check, at load time
        typeguard_predicate(_PROBE)
    except Exception as exc:  # noqa: BLE001 - any failure here means an unusable form
        raise TypeFormError(form, f"typeguard cannot check it ({exc})") from None
    return typeguard_predicate


def make_predicate(form: Any, *, where: str = "type") -> Predicate:
    """A compiled ``value -> bool`` check for one type form (same rules as ArgsChecker)."""
    translated = translate_type(form, where=where)
    try:
        return _compile(translated)
    except TypeFormError as exc:
        raise ModelError(f"{where}: invalid type {type_name(form)}: {exc.args[1]}") from None


def _explain(form: Any, value: Any) -> str:
    """Why `value` does not match `form` (only called after a predicate failed)."""
    if isinstance(value, Decimal) and not is_finite_decimal(value):
        low, high = DECIMAL_EXPONENTS
        return (f"a Decimal must be finite with an exponent in {low}..{high} "
                f"(AnyDecimal allows NaN and Infinity)")
    strategy = CollectionCheckStrategy.ALL_ITEMS
    try:
        check_type(value, _strict(form), collection_check_strategy=strategy)
    except TypeCheckError as exc:
        return " ".join(str(exc).split())  # typeguard's union report spans several lines
    except Exception as exc:  # noqa: BLE001 - the message is best effort
        return f"{type(exc).__name__}: {exc}"
    return ""


def _dict_members(form: Any) -> list[tuple[Any, Any]]:
    """(key, value) forms of the dict-like members of a form (for partial checks)."""
    members = get_args(form) if get_origin(form) in _UNIONS else (form,)
    return [get_args(m) if len(get_args(m)) == 2 else (Any, Any)
            for m in members if (get_origin(m) or m) in _MAPPINGS]


def _exact_class(form: Any) -> type | None:
    """The class whose exact instances always match `form` (a plain class), else None."""
    if (form is not Any and form is not Decimal and get_origin(form) is None
            and isinstance(form, type) and _plain_predicate(form) is not None):
        return form
    return None


def _compile_partial(form: Any) -> Predicate:
    """Merge-patch predicate: None deletes; dicts against a dict-like form check recursively."""
    full = _compile(form)
    members = _dict_members(form)
    dict_forms = [(_compile(k), _compile_partial(v)) for k, v in members]
    if not dict_forms:
        return lambda v: v is None or full(v)
    if len(dict_forms) == 1:  # the common case ({Decimal: Decimal} order-book levels): no
        (key_ok, item_ok), = dict_forms  # generator per value, exact classes checked inline
        key_class, item_class = (_exact_class(f) for f in members[0])

        def one_dict_predicate(value: Any) -> bool:
            if value is None:
                return True
            if isinstance(value, dict):
                for key, item in value.items():
                    if not (key.__class__ is key_class or key_ok(key)):
                        return False
                    if not (item is None or item.__class__ is item_class or item_ok(item)):
                        return False
                return True
            return full(value)

        return one_dict_predicate

    def partial_predicate(value: Any) -> bool:
        if value is None:
            return True
        if isinstance(value, dict):
            return any(all(kp(k) and vp(item) for k, item in value.items())
                       for kp, vp in dict_forms)
        return full(value)

    return partial_predicate


def _explain_partial(form: Any, value: Any) -> str:
    dict_forms = _dict_members(form)
    if not isinstance(value, dict) or not dict_forms:
        return _explain(form, value)
    key_form, value_form = dict_forms[0]
    key_ok, value_ok = _compile(key_form), _compile_partial(value_form)
    for key, item in value.items():
        if not key_ok(key):
            return f"key {_short(key)} is {_tname(key)}, expected {type_name(key_form)}"
        if not value_ok(item):
            return (f"value of key {_short(key)} is {_tname(item)}, expected "
                    f"{type_name(value_form)} or None: {_explain_partial(value_form, item)}")
    return ""


_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = 40
_repr.maxlist = _repr.maxdict = _repr.maxset = _repr.maxtuple = 4
_repr.maxlevel = 2


def _short(value: Any) -> str:
    text = _repr.repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _tname(value: Any) -> str:
    return "None" if value is None else type(value).__qualname__


class ArgsChecker:
    """Checks argument dicts against a ``required``/``optional`` model, compiled once."""

    def __init__(self, owner: str, required: Mapping[str, Any] | None,
                 optional: Mapping[str, Any] | None, *, where: str | None = None) -> None:
        self.owner = owner
        where = where or owner
        forms: dict[str, Any] = {}
        for section, model in (("required", required), ("optional", optional)):
            if model is None:
                continue
            if not isinstance(model, Mapping):
                raise ModelError(f"{where}: {section} arguments must be a dict, "
                                 f"got {type(model).__name__}")
            for key, form in model.items():
                if not isinstance(key, str):
                    raise ModelError(f"{where}: argument names must be str, got {key!r}")
                if key in forms:
                    raise ModelError(f"{where}: key {key!r} is both required and optional")
                forms[key] = translate_type(form, where=f"{where}, key {key!r}")
        self.required: dict[str, Any] = {k: forms[k] for k in (required or {})}
        self.optional: dict[str, Any] = {k: forms[k] for k in (optional or {})}
        self.forms = forms
        self.keys: frozenset[str] = frozenset(forms)
        self.hidden: frozenset[str] = frozenset()  # keys whose values errors never quote
        self._required_keys = frozenset(self.required)
        self._checks: dict[str, Predicate] = {}
        self._partial_checks: dict[str, Predicate] = {}
        # key -> a class whose exact instances are valid, full or partial: the hot path
        # skips the predicate call for them (a bool is never an int's exact class).
        self._exact: dict[str, type] = {k: c for k, f in forms.items()
                                        if (c := _exact_class(f)) is not None}
        for key, form in forms.items():
            try:
                self._checks[key] = _compile(form)
                self._partial_checks[key] = _compile_partial(form)
            except TypeFormError as exc:
                raise ModelError(f"{where}, key {key!r}: invalid type {type_name(form)}: "
                                 f"{exc.args[1]}") from None

    def check(self, args: Any, *, partial: bool = False) -> dict:
        """Return `args` if it matches the model, else raise ArgumentError.

        partial=True checks a JSON-merge-patch delta: nothing is required, None is a
        deletion anywhere, and dicts for dict-typed keys are checked recursively.
        """
        if not isinstance(args, dict):
            raise ArgumentError(f"{self.owner}: expected a dict of arguments, "
                                f"got {type(args).__name__}")
        checks = self._partial_checks if partial else self._checks
        exact = self._exact
        for key, value in args.items():
            if exact.get(key) is value.__class__:
                continue
            predicate = checks.get(key)
            if predicate is None:
                self._unknown(key)
            if not predicate(value):  # type: ignore[misc]
                self._wrong(key, value, partial)
        if not partial and not args.keys() >= self._required_keys:
            missing = [k for k in self.required if k not in args]
            listing = ", ".join(f"{k!r} ({type_name(self.required[k])})" for k in missing)
            plural = "s" if len(missing) > 1 else ""
            raise ArgumentError(f"{self.owner}: missing required key{plural} {listing}")
        return args

    def check_return(self, value: Any) -> dict:
        """A handler's or a peer's return value: `None` means `{}` when no key is modelled;
        with no model every dict passes; otherwise `check`."""
        if self.keys:
            return self.check(value)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ArgumentError(f"{self.owner}: expected a dict, got {type(value).__name__}")
        return value

    def _unknown(self, key: Any) -> None:
        allowed = ", ".join(repr(k) for k in self.forms) or "none"
        raise ArgumentError(f"{self.owner}: unknown key {_short(key)} (allowed keys: {allowed})")

    def _wrong(self, key: str, value: Any, partial: bool) -> None:
        form = self.forms[key]
        detail = ("" if key in self.hidden else
                  _explain_partial(form, value) if partial else _explain(form, value))
        expected = type_name(form)
        expected += " or None" if partial and not expected.endswith("| None") else ""
        shown = ("(hidden: a secret)" if key in self.hidden else
                 "" if value is None else _short(value))  # not "got None None"
        message = (f"{self.owner}: key {key!r} expected {expected}, "
                   f"got {_tname(value)} {shown}".rstrip())
        # not "got None (None is not a list)": the same thing twice
        said = not detail or detail.startswith(f"{_tname(value)} is not ")
        raise ArgumentError(message + ("" if said else f" ({detail})"))
