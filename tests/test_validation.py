"""Type forms, readable names and the compiled argument checker."""

from __future__ import annotations

import typing
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, Optional

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service_framework.errors import ArgumentError, ModelError
from service_framework.wire.forms import translate_type, type_name
from service_framework.wire.validation import ArgsChecker, make_predicate

OWNER = "connection 'echo' request"


def checker(required=None, optional=None, owner=OWNER) -> ArgsChecker:
    return ArgsChecker(owner, required, optional)


# --- translate_type --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        (int, int),
        (Decimal, Decimal),
        (list[int], list[int]),
        (dict[str, Decimal], dict[str, Decimal]),
        (int | None, int | None),
        (Optional[int], Optional[int]),  # noqa: UP045 - the typing spelling is under test
        (Any, Any),
        (Literal["a", "b"], Literal["a", "b"]),
        (None, type(None)),
        ({str: int}, dict[str, int]),
        ([int], list[int]),
        ((int, str), tuple[int, str]),
        ((int, ...), tuple[int, ...]),
        ({int}, set[int]),
        (frozenset({int}), frozenset[int]),
        ({str: [Decimal]}, dict[str, list[Decimal]]),
        ({str: {Decimal: (int, [str])}}, dict[str, dict[Decimal, tuple[int, list[str]]]]),
        (list[[int]], list[list[int]]),
        (dict[str, {int: str}], dict[str, dict[int, str]]),
        (typing.List[int], typing.List[int]),  # noqa: UP006
    ],
)
def test_translate_type_accepts_forms(form, expected):
    assert translate_type(form, where="here") == expected


def test_translate_type_shorthand_inside_union():
    form = translate_type(list[{str: int}] | None, where="here")
    assert form == Optional[list[dict[str, int]]]  # noqa: UP045
    assert type_name(form) == "list[dict[str, int]] | None"


@pytest.mark.parametrize(
    ("form", "shown"),
    [
        ([int, str], "[int, str]"),
        ({int: str, str: int}, "{int: str, str: int}"),
        ("int", "'int'"),
        (5, "5"),
        ([], "[]"),
        ({}, "{}"),
        ((), "()"),
        (set(), "set()"),
        (typing.ClassVar[int], "ClassVar"),
    ],
)
def test_translate_type_rejects_bad_forms(form, shown):
    with pytest.raises(ModelError) as info:
        translate_type(form, where="connection_models.in.echo")
    message = str(info.value)
    assert message.startswith("connection_models.in.echo")
    assert shown in message


def test_translate_type_names_nested_bad_form_and_the_whole():
    with pytest.raises(ModelError) as info:
        translate_type({str: [int, str]}, where="w")
    assert "[int, str] in {str: [int, str]}" in str(info.value)


def test_bad_literal_value_is_model_error():
    with pytest.raises(ModelError):
        translate_type(Literal[1.5], where="w")


def test_bad_form_in_args_checker_names_where_and_key():
    with pytest.raises(ModelError) as info:
        ArgsChecker(OWNER, {"levels": [int, str]}, None, where="connection_models.in.echo")
    assert "connection_models.in.echo" in str(info.value)
    assert "'levels'" in str(info.value)


def test_model_must_be_a_mapping_and_keys_unique():
    with pytest.raises(ModelError):
        ArgsChecker(OWNER, [("a", int)], None)
    with pytest.raises(ModelError, match="both required and optional"):
        ArgsChecker(OWNER, {"a": int}, {"a": str})
    with pytest.raises(ModelError):
        ArgsChecker(OWNER, {1: int}, None)


# --- type_name ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "name"),
    [
        (int, "int"),
        (Decimal, "Decimal"),
        (datetime, "datetime"),
        (dict[str, Decimal], "dict[str, Decimal]"),
        (int | None, "int | None"),
        (Optional[dict], "dict | None"),  # noqa: UP045
        ({str: [Decimal]}, "dict[str, list[Decimal]]"),
        ((int, ...), "tuple[int, ...]"),
        (Literal["a", 1], "Literal['a', 1]"),
        (Any, "Any"),
        (None, "None"),
        (Mapping[str, int], "Mapping[str, int]"),
    ],
)
def test_type_name(form, name):
    assert type_name(form) == name


# --- check: structure ----------------------------------------------------------------------


def test_returns_the_args():
    args = {"a": 1, "b": "x"}
    assert checker({"a": int}, {"b": str}).check(args) is args
    assert checker({"a": int}, {"b": str}).check({"a": 1}) == {"a": 1}


def test_keys_attribute():
    assert checker({"a": int}, {"b": str}).keys == frozenset({"a", "b"})
    assert checker(None, None).keys == frozenset()


def test_not_a_dict():
    with pytest.raises(ArgumentError) as info:
        checker({"a": int}).check([1])
    assert str(info.value) == f"{OWNER}: expected a dict of arguments, got list"


def test_missing_required_key_names_owner_key_and_type():
    with pytest.raises(ArgumentError) as info:
        checker({"count": int, "levels": {Decimal: Decimal}}).check({"count": 1})
    message = str(info.value)
    assert OWNER in message and "'levels'" in message and "dict[Decimal, Decimal]" in message
    assert "'count'" not in message


def test_unknown_key_names_owner_key_and_allowed():
    with pytest.raises(ArgumentError) as info:
        checker({"count": int}, {"note": str}).check({"count": 1, "colour": "red"})
    message = str(info.value)
    assert OWNER in message and "'colour'" in message
    assert "'count'" in message and "'note'" in message


def test_argument_error_is_a_value_error():
    with pytest.raises(ValueError):
        checker({"a": int}).check({})


# --- check: types ----------------------------------------------------------------------


def test_wrong_type_message_names_everything():
    with pytest.raises(ArgumentError) as info:
        checker({"count": int}).check({"count": "seven"})
    message = str(info.value)
    assert OWNER in message
    assert "'count'" in message
    assert "expected int" in message
    assert "got str" in message and "'seven'" in message


def test_wrong_type_message_for_generic_type():
    with pytest.raises(ArgumentError) as info:
        checker({"book": {str: Decimal}}).check({"book": {"a": 1.5}})
    message = str(info.value)
    assert "expected dict[str, Decimal]" in message and "got dict" in message


def test_wrong_type_message_for_optional():
    with pytest.raises(ArgumentError) as info:
        checker({"n": int | None}).check({"n": "x"})
    assert "expected int | None" in str(info.value)
    assert "\n" not in str(info.value)


def test_long_value_is_truncated_in_message():
    with pytest.raises(ArgumentError) as info:
        checker({"s": int}).check({"s": "x" * 10_000})
    assert len(str(info.value)) < 400


def test_bool_rejected_for_int():
    with pytest.raises(ArgumentError, match="got bool"):
        checker({"n": int}).check({"n": True})


def test_bool_rejected_for_float():
    with pytest.raises(ArgumentError):
        checker({"x": float}).check({"x": False})


def test_bool_accepted_for_bool():
    checker({"flag": bool}).check({"flag": True})


def test_int_accepted_for_float_numeric_tower():
    checker({"x": float}).check({"x": 3})
    checker({"x": [float]}).check({"x": [1, 2.5]})


@pytest.mark.parametrize(
    ("form", "value"),
    [
        (list[int], [1, 2, True]),
        ([int], [1, True]),
        (int | None, True),
        (Optional[int], False),  # noqa: UP045
        ({str: int}, {"a": True}),
        ({int: str}, {True: "a"}),
        ((int, str), (True, "a")),
        ({int}, {2, True}),
        (list[float], [1.0, True]),
        (int | str, True),
    ],
)
def test_bool_rejected_inside_containers_and_unions(form, value):
    with pytest.raises(ArgumentError):
        checker({"v": form}).check({"v": value})


def test_bool_still_accepted_where_the_union_allows_it():
    checker({"v": int | bool}).check({"v": True})
    checker({"v": list[int | bool]}).check({"v": [1, True]})


def test_every_item_of_a_long_list_is_checked():
    check = checker({"levels": list[int]})
    check.check({"levels": list(range(1000))})
    with pytest.raises(ArgumentError) as info:
        check.check({"levels": [*range(999), "bad"]})
    assert "999" in str(info.value)


def test_every_value_of_a_dict_is_checked():
    book = {Decimal(i): Decimal(i) for i in range(500)}
    book[Decimal(1000)] = 1.5
    with pytest.raises(ArgumentError):
        checker({"asks": {Decimal: Decimal}}).check({"asks": book})


@pytest.mark.parametrize("form", [Optional[dict], Optional[list], dict | None, list | None])  # noqa: UP045
def test_optional_dict_and_list_work(form):
    check = checker(None, {"v": form})
    check.check({"v": None})
    check.check({})
    check.check({"v": {} if "dict" in type_name(form) else []})
    with pytest.raises(ArgumentError):
        check.check({"v": 5})


def test_nested_shorthand():
    check = checker({"book": {str: [Decimal]}})
    check.check({"book": {"a": [Decimal("1.5"), Decimal(2)], "b": []}})
    with pytest.raises(ArgumentError):
        check.check({"book": {"a": [Decimal("1.5"), 2.0]}})
    with pytest.raises(ArgumentError):
        check.check({"book": {1: [Decimal("1.5")]}})


def test_tuple_and_set_shorthands():
    check = checker({"pair": (int, str), "tags": {str}})
    check.check({"pair": (1, "a"), "tags": {"x", "y"}})
    with pytest.raises(ArgumentError):
        check.check({"pair": (1, 2), "tags": {"x"}})
    with pytest.raises(ArgumentError):
        check.check({"pair": (1, "a"), "tags": {"x", 3}})


def test_any_accepts_everything():
    check = checker({"v": Any})
    for value in (None, 1, "x", object(), [1, "a"]):
        check.check({"v": value})


def test_literal():
    check = checker({"side": Literal["buy", "sell"]})
    check.check({"side": "buy"})
    with pytest.raises(ArgumentError, match="Literal"):
        check.check({"side": "hold"})


def test_plain_classes_and_subclasses():
    class Base:
        pass

    class Child(Base):
        pass

    check = checker({"obj": Base, "when": datetime})
    check.check({"obj": Child(), "when": datetime(2030, 1, 1, tzinfo=UTC)})
    with pytest.raises(ArgumentError, match="expected Base"):
        check.check({"obj": object(), "when": datetime(2030, 1, 1)})


def test_none_type_only_accepts_none():
    check = checker({"v": None})
    check.check({"v": None})
    with pytest.raises(ArgumentError):
        check.check({"v": 0})


# --- partial (delta) checks --------------------------------------------------------------

BOOK = {"asks": {Decimal: Decimal}, "bids": {Decimal: Decimal}, "venue": str}
NESTED = {"meta": {str: {str: int}}, "count": int}


def test_partial_does_not_require_keys():
    checker(BOOK, owner="state 'book' delta").check({}, partial=True)
    with pytest.raises(ArgumentError):
        checker(BOOK).check({})


def test_partial_accepts_none_for_any_key():
    checker(BOOK).check({"venue": None, "asks": None}, partial=True)
    with pytest.raises(ArgumentError):
        checker(BOOK).check({"venue": None, "asks": {}, "bids": {}})


def test_partial_nested_none_deletions():
    check = checker(BOOK)
    check.check({"asks": {Decimal("1.5"): None, Decimal(2): Decimal(3)}}, partial=True)
    deep = checker(NESTED)
    deep.check({"meta": {"a": {"x": None, "y": 2}, "b": None}}, partial=True)
    with pytest.raises(ArgumentError):  # a full check does not accept deletions
        deep.check({"meta": {"a": {"x": None}}, "count": 1})


def test_partial_checks_nested_types():
    check = checker(NESTED, owner="state 'book' delta")
    with pytest.raises(ArgumentError) as info:
        check.check({"meta": {"a": {"x": "not an int"}}}, partial=True)
    message = str(info.value)
    assert "state 'book' delta" in message and "'meta'" in message
    assert "dict[str, dict[str, int]]" in message and "got dict" in message
    with pytest.raises(ArgumentError):
        check.check({"meta": {1: {"x": 1}}}, partial=True)  # bad key type
    with pytest.raises(ArgumentError):
        check.check({"meta": {"a": {"x": True}}}, partial=True)  # bool for int
    with pytest.raises(ArgumentError):
        check.check({"count": "x"}, partial=True)  # non-dict types are checked normally
    with pytest.raises(ArgumentError):
        check.check({"meta": 5}, partial=True)


def test_partial_unknown_key_still_fails():
    with pytest.raises(ArgumentError, match="'colour'"):
        checker(BOOK).check({"colour": None}, partial=True)


def test_partial_with_typing_mapping_and_optional_dict():
    check = checker(None, {"m": Mapping[str, int], "o": Optional[dict[str, list[int]]]})  # noqa: UP045
    check.check({"m": {"a": None}, "o": {"k": None, "j": [1]}}, partial=True)
    with pytest.raises(ArgumentError):
        check.check({"o": {"k": [1, None]}}, partial=True)  # lists are not merged


def test_partial_bare_dict_accepts_any_patch():
    checker({"d": dict}).check({"d": {"a": None, 1: [2]}}, partial=True)


# --- make_predicate ------------------------------------------------------------------------


def test_make_predicate():
    ok = make_predicate({str: [int]})
    assert ok({"a": [1, 2]})
    assert not ok({"a": [1, True]})
    assert not ok({"a": [1, "x"]})


# --- the compiled loops agree with typeguard --------------------------------------------------
LOOP_FORMS = [dict[str, int], dict[Decimal, Decimal], list[int], set[str], frozenset[int],
              tuple[int, ...], dict[str, list[int | None]], int | str, list[float],
              dict[int, dict[str, Decimal]], list[bool]]
_scalars = st.one_of(st.integers(-5, 5), st.booleans(), st.none(), st.text(max_size=2),
                     st.floats(allow_nan=False), st.decimals(places=2, allow_nan=True))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.frozensets(st.integers(-2, 2), max_size=3),
    st.sets(st.text(max_size=1), max_size=3), st.tuples(inner, inner),
    st.dictionaries(st.one_of(st.text(max_size=1), st.integers(-2, 2),
                              st.decimals(places=1, allow_nan=False)), inner, max_size=3)),
    max_leaves=8)


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(st.sampled_from(LOOP_FORMS), _values)
def test_compiled_container_loops_accept_what_typeguard_accepts(form, value):
    from typeguard import CollectionCheckStrategy, TypeCheckError, check_type

    from service_framework.wire.validation import _compile_loop, _strict
    loop = _compile_loop(form)
    assert loop is not None, f"{form} should compile to a loop"
    try:
        check_type(value, _strict(form),
                   collection_check_strategy=CollectionCheckStrategy.ALL_ITEMS)
        expected = True
    except TypeCheckError:
        expected = False
    assert loop(value) is expected
