"""Hypothesis strategies built from a service's models.

`arguments(model)` gives valid argument dicts, `invalid_arguments(model)` dicts the model
rejects, `delta_streams(model)` lists of deltas for a delta-update state, `fault_plans()`
fault positions for `replay_delta_stream`. A model is a connection or state model dict
(its `required_arguments` / `optional_arguments`) or an `ArgsChecker`. Every value fits the
codec (64-bit ints, no NaN), so it can cross a real socket.
"""

from __future__ import annotations

import collections.abc as cabc
import datetime as _dt
import types
import typing
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, Mapping, get_args, get_origin

from hypothesis import strategies as st

from service_framework.wire.validation import ArgsChecker

INT64 = (-(2**63), 2**63 - 1)
_UTC = st.just(_dt.timezone.utc)


def _checker(model: Mapping | ArgsChecker) -> ArgsChecker:
    if isinstance(model, ArgsChecker):
        return model
    if "required_arguments" in model or "optional_arguments" in model:
        return ArgsChecker("model", model.get("required_arguments"),
                           model.get("optional_arguments"))
    return ArgsChecker("model", model, None)


# The classes as imported, before any test freezes time: under freezegun `datetime.datetime`
# is a subclass of its own, which Hypothesis cannot build from its type alone.
_PLAIN: dict[type, st.SearchStrategy] = {
    bool: st.booleans(),
    int: st.integers(*INT64),
    float: st.floats(allow_nan=False, allow_infinity=False),
    str: st.text(max_size=20),
    bytes: st.binary(max_size=20),
    Decimal: st.decimals(allow_nan=False, allow_infinity=False, places=4,
                         min_value=-10**9, max_value=10**9),
    _dt.datetime: st.datetimes(timezones=_UTC),
    _dt.date: st.dates(),
    _dt.time: st.times(),
    _dt.timedelta: st.timedeltas(),
    uuid.UUID: st.uuids(),
    type(None): st.none(),
}


def _plain(cls: type) -> st.SearchStrategy | None:
    if cls.__module__.startswith("freezegun"):  # FakeDatetime, FakeDate: their real base
        cls = next(base for base in cls.__mro__[1:] if not base.__module__.startswith("freezegun"))
    return _PLAIN.get(cls)


def for_type(form: Any, *, max_size: int = 5) -> st.SearchStrategy:
    """Values of one (translated) type form."""
    if form is Any:
        return st.one_of(st.none(), st.integers(*INT64), st.text(max_size=10))
    if isinstance(form, type) and (strategy := _plain(form)) is not None:
        return strategy
    origin, args = get_origin(form), get_args(form)
    if origin is Literal:
        return st.sampled_from(args)
    if origin in (typing.Union, types.UnionType):
        return st.one_of([for_type(arg, max_size=max_size) for arg in args])
    if origin in (dict, cabc.Mapping, cabc.MutableMapping):
        key, value = args or (str, Any)
        return st.dictionaries(_hashable(key), for_type(value, max_size=max_size),
                               max_size=max_size)
    if origin in (list, cabc.Sequence):
        return st.lists(for_type(args[0] if args else Any), max_size=max_size)
    if origin in (set, frozenset, cabc.Set):
        items = st.sets(_hashable(args[0] if args else int), max_size=max_size)
        return items.map(frozenset) if origin is frozenset else items
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return st.lists(for_type(args[0]), max_size=max_size).map(tuple)
        return st.tuples(*(for_type(arg) for arg in args))
    return st.from_type(form)


def _hashable(form: Any) -> st.SearchStrategy:
    return for_type(form).filter(lambda value: _is_hashable(value))


def _is_hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


@st.composite
def arguments(draw, model: Mapping | ArgsChecker) -> dict:
    """A dict the model accepts: every required key, some optional keys."""
    checker = _checker(model)
    args = {key: draw(for_type(form)) for key, form in checker.required.items()}
    for key, form in checker.optional.items():
        if draw(st.booleans()):
            args[key] = draw(for_type(form))
    return args


# Wrong values that still cross the codec, so an invalid request reaches the service and is
# refused there, by validation, as a peer's would be.
_WRONG_VALUES = (b"\x00", ["x"], 3.5, "x", True, {"k": 1}, None, Decimal("1.5"), -1)


@st.composite
def invalid_arguments(draw, model: Mapping | ArgsChecker) -> dict:
    """A dict the model rejects: a missing, unknown or wrongly typed key."""
    checker = _checker(model)
    args = draw(arguments(checker))
    typed = [key for key, form in checker.forms.items() if form is not Any]
    choices = ["unknown"] + (["missing"] if checker.required else []) + (
        ["wrong_type"] if typed else [])
    how = draw(st.sampled_from(choices))
    if how == "missing":
        del args[draw(st.sampled_from(sorted(checker.required)))]
    elif how == "unknown":
        extra = draw(st.text(min_size=1, max_size=10).filter(lambda k: k not in checker.keys))
        args[extra] = draw(st.integers(*INT64))
    else:
        key = draw(st.sampled_from(sorted(typed)))
        args[key] = draw(st.sampled_from(_WRONG_VALUES))
    try:
        checker.check(args)
    except ValueError:
        return args
    # the "wrong" value happened to fit (e.g. a str for a str | int key): make it unknown
    args["\x00unknown"] = 1
    return args


def _partial(form: Any, depth: int = 0) -> st.SearchStrategy:
    """A delta for one key: a value, or for maps a partial map whose entries may be None."""
    origin, args = get_origin(form), get_args(form)
    if origin in (dict, cabc.Mapping, cabc.MutableMapping) and depth < 2:
        key, value = args or (str, Any)
        return st.dictionaries(_hashable(key), st.one_of(st.none(), _partial(value, depth + 1)),
                               max_size=4)
    return for_type(form)


@st.composite
def delta_streams(draw, model: Mapping | ArgsChecker, *, min_size: int = 1,
                  max_size: int = 30) -> list[dict]:
    """Deltas for a delta-update state: the first is a full value (a snapshot), the rest
    change some keys, delete optional ones (None) and nested map entries."""
    checker = _checker(model)
    first = draw(arguments(checker))
    first["is_snapshot"] = True
    stream = [first]
    keys = sorted(checker.forms)
    for _ in range(draw(st.integers(min_size - 1 if min_size else 0, max_size - 1))):
        delta = {}
        for key in draw(st.lists(st.sampled_from(keys), max_size=3, unique=True)) if keys else []:
            if key in checker.optional and draw(st.integers(0, 4)) == 0:
                delta[key] = None
            else:
                delta[key] = draw(_partial(checker.forms[key]))
        stream.append(delta)
    return stream


@dataclass(frozen=True)
class FaultPlan:
    """Positions (0-based indices into a stream of updates) of faults to inject."""

    drop: frozenset[int] = frozenset()
    duplicate: frozenset[int] = frozenset()
    reorder: frozenset[int] = frozenset()
    restart_at: frozenset[int] = frozenset()

    def as_kwargs(self) -> dict[str, frozenset[int]]:
        return {"drop": self.drop, "duplicate": self.duplicate, "reorder": self.reorder,
                "restart_at": self.restart_at}


def fault_plans(*, max_index: int = 30, restarts: bool = True) -> st.SearchStrategy[FaultPlan]:
    """Fault plans for `replay_delta_stream(**plan.as_kwargs())`."""
    positions = st.frozensets(st.integers(0, max_index), max_size=4)
    return st.builds(FaultPlan, drop=positions, duplicate=positions, reorder=positions,
                     restart_at=st.frozensets(st.integers(1, max_index), max_size=2)
                     if restarts else st.just(frozenset()))
