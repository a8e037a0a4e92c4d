"""Type forms of argument models: the 0.0.12 shorthands translated once at load time, and
readable names for every form (error messages name the expected type with them).

`{K: V}` is `dict[K, V]`, `[T]` a `list[T]`, `(T1, T2)` a tuple, `{T}` a set (SPEC §3).
"""

from __future__ import annotations

import collections.abc as cabc
import types
import typing
from collections.abc import Callable
from decimal import Decimal
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from ..errors import ModelError, TypeFormError

__all__ = ["AnyDecimal", "Secret", "allows_non_finite", "is_secret", "map_args",
           "translate_type", "type_name", "unwrap_secret"]

_NONE = type(None)
_UNIONS = (Union, types.UnionType)
_MAPPINGS = (dict, cabc.Mapping, cabc.MutableMapping)
_LITERAL_VALUE_TYPES = (int, str, bytes, bool, _NONE)

class _NonFiniteAllowed:
    """The marker of `AnyDecimal` (compared by identity)."""

    def __repr__(self) -> str:
        return "non-finite allowed"


_NON_FINITE_ALLOWED = _NonFiniteAllowed()
# A plain `Decimal` in a model means a finite decimal of sane magnitude (see
# `validation.is_finite_decimal`); a model that wants NaN, sNaN or Infinity says
# `AnyDecimal`, and an exponent out of range is still refused.
AnyDecimal = Annotated[Decimal, _NON_FINITE_ALLOWED]


class _SecretMarker:
    def __repr__(self) -> str:
        return "secret"


_SECRET = _SecretMarker()


class Secret:
    """Marks a `config_model` value as secret: ``{"db_password": Secret[str]}``. Its value
    is checked like the inner type, never written to a trace header and never quoted in an
    error message. (Keys named like password, token, secret or key are treated so too.)"""

    def __class_getitem__(cls, form: Any) -> Any:
        return Annotated[form, _SECRET]


def is_secret(form: Any) -> bool:
    return get_origin(form) is Annotated and _SECRET in form.__metadata__


def unwrap_secret(form: Any) -> Any:
    """The type inside `Secret[...]` (the form itself otherwise)."""
    return get_args(form)[0] if is_secret(form) else form


def allows_non_finite(form: Any) -> bool:
    """Whether `form` is `AnyDecimal` (Decimal with non-finite values allowed)."""
    return get_origin(form) is Annotated and _NON_FINITE_ALLOWED in form.__metadata__


_SHORTHANDS = {
    dict: "a dict shorthand has exactly one {KeyType: ValueType} pair",
    list: "a list shorthand has exactly one item type: [T]",
    tuple: "a tuple shorthand needs at least one item type",
    set: "a set shorthand has exactly one item type: {T}",
    frozenset: "a frozenset shorthand has exactly one item type",
}



def translate_type(form: Any, *, where: str) -> Any:
    """Return the typing form for a model type form (translating 0.0.12 shorthands)."""
    try:
        return _translate(form)
    except TypeFormError as exc:
        bad, reason = exc.args
        inner = "" if bad is form else f" in {type_name(form)}"
        raise ModelError(f"{where}: invalid type {type_name(bad)}{inner}: {reason}") from None


def _translate(form: Any) -> Any:
    if form is None or form is _NONE:
        return _NONE
    if form is Any:  # checked before `type`: typing.Any is a class on Python 3.11+
        return Any
    kind = type(form)
    if kind in _SHORTHANDS and (len(form) != 1 if kind is not tuple else not form):
        raise TypeFormError(form, _SHORTHANDS[kind])
    if kind is dict:
        ((key, value),) = form.items()
        return dict[_translate(key), _translate(value)]
    if kind is tuple:
        if len(form) == 2 and form[1] is Ellipsis:
            return tuple[_translate(form[0]), ...]
        return tuple[tuple(_translate(item) for item in form)]
    if kind in _SHORTHANDS:  # [T], {T}, frozenset({T})
        return kind[_translate(next(iter(form)))]
    if isinstance(form, (str, typing.ForwardRef)):
        raise TypeFormError(form, "type names given as strings are not supported; use the type")
    origin = get_origin(form)
    if origin is Literal:
        if not all(isinstance(v, _LITERAL_VALUE_TYPES) or hasattr(v, "_value_")
                   for v in get_args(form)):
            raise TypeFormError(form, "Literal values must be str/int/bytes/bool/None/Enum")
        return form
    if origin in (typing.ClassVar, typing.Final):
        raise TypeFormError(form, "not a value type")
    if origin is not None:
        return map_args(form, origin, _translate)
    if isinstance(form, typing.TypeVar):
        raise TypeFormError(form, "a model cannot use a type variable")
    if isinstance(form, type) or hasattr(form, "__supertype__"):  # classes and NewTypes
        return form
    raise TypeFormError(form, "not a type (expected a class, a typing form or a shorthand)")


def map_args(form: Any, origin: Any, fn: Callable[[Any], Any]) -> Any:
    """Rebuild a typing form with `fn` applied to its type arguments."""
    if origin is Literal or origin is cabc.Callable:
        return form  # their arguments are values / a parameter list, not type forms
    args = get_args(form)
    if origin is Annotated:
        return Annotated[(fn(args[0]), *form.__metadata__)]
    new_args = tuple(arg if arg is Ellipsis or arg == () else fn(arg) for arg in args)
    if new_args == args:
        return form  # keep the user's spelling (typing.List[int] stays as given)
    if origin in _UNIONS:
        return Union[new_args]  # noqa: UP007 - built at run time, not an annotation
    if isinstance(form, types.GenericAlias):
        return types.GenericAlias(origin, new_args)
    return form.copy_with(new_args)


def type_name(form: Any) -> str:
    """A readable name for a type form: ``int``, ``dict[str, Decimal]``, ``int | None``."""
    if form is Any:
        return "Any"
    if form is None or form is _NONE:
        return "None"
    if form is Ellipsis:
        return "..."
    kind = type(form)
    if kind in _SHORTHANDS:
        try:
            form = _translate(form)
        except TypeFormError:  # show a bad shorthand readably: [int, str], {int: str, str: int}
            if kind is dict:
                return "{" + ", ".join(f"{type_name(k)}: {type_name(v)}"
                                       for k, v in form.items()) + "}"
            if not form and kind in (set, frozenset):
                return f"{kind.__name__}()"
            inner = ", ".join(type_name(item) for item in form)
            return {list: "[{}]", tuple: "({})", set: "{{{}}}"}.get(kind, "{{{}}}").format(inner)
    origin = get_origin(form)
    if origin is None:
        if isinstance(form, type) or hasattr(form, "__supertype__"):
            qualname = form.__qualname__  # Outer.Inner reads well; f.<locals>.Inner does not
            return form.__name__ if "<locals>" in qualname else qualname
        return repr(form)
    args = get_args(form)
    if origin in _UNIONS:
        return " | ".join(type_name(arg) for arg in args)
    if origin is Literal:
        return f"Literal[{', '.join(repr(arg) for arg in args)}]"
    if origin is Annotated:
        return "AnyDecimal" if allows_non_finite(form) else type_name(args[0])
    if origin is cabc.Callable:
        return repr(form).replace("collections.abc.", "").replace("typing.", "")
    name = type_name(origin)
    if not args:
        return f"{name}[()]" if origin is tuple and form is not typing.Tuple else name  # noqa: UP006
    return f"{name}[{', '.join(type_name(arg) for arg in args)}]"
