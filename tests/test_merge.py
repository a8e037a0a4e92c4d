"""JSON Merge Patch (RFC 7396) as delta states apply it: in place, any hashable keys."""

from decimal import Decimal

import pytest

from service_framework.states.merge import copy_value, merge_patch, replace_value

# The examples of RFC 7396, Appendix A (original, patch, result), that apply to dicts.
RFC_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ({"a": "foo"}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("original", "patch", "result"), RFC_EXAMPLES)
def test_rfc_7396_examples(original, patch, result):
    assert merge_patch(original, patch) == result


def test_merges_in_place_and_returns_the_target():
    target = {"asks": {Decimal("1.5"): Decimal("2")}}
    inner = target["asks"]
    assert merge_patch(target, {"asks": {Decimal("1.6"): Decimal("1")}}) is target
    assert target["asks"] is inner  # nested dicts are merged, not replaced
    assert inner == {Decimal("1.5"): Decimal("2"), Decimal("1.6"): Decimal("1")}


def test_decimal_keys_are_set_replaced_and_deleted():
    book = {"asks": {Decimal("100.5"): Decimal("1"), Decimal("101"): Decimal("2")}}
    merge_patch(book, {"asks": {Decimal("100.5"): None, Decimal("101"): Decimal("3"),
                                Decimal("102"): Decimal("4")}})
    assert book == {"asks": {Decimal("101"): Decimal("3"), Decimal("102"): Decimal("4")}}


def test_deleting_a_missing_key_is_a_no_op():
    value = {"a": 1}
    merge_patch(value, {"b": None, "c": {"d": None}})
    assert value == {"a": 1, "c": {}}


def test_dicts_from_the_patch_are_copied_so_later_merges_never_touch_the_caller():
    patch = {"asks": {Decimal("1"): Decimal("1")}}
    value = merge_patch({}, patch)
    merge_patch(value, {"asks": {Decimal("2"): Decimal("2")}})
    assert patch == {"asks": {Decimal("1"): Decimal("1")}}


def test_copy_value_copies_every_dict_and_keeps_none():
    original = {"book": {"asks": {1: 2}}, "note": None, "levels": [1, 2]}
    copied = copy_value(original)
    assert copied == original
    assert copied["book"] is not original["book"]
    assert copied["book"]["asks"] is not original["book"]["asks"]


def test_replace_value_keeps_the_identity_of_the_live_dict():
    live = {"a": 1, "b": 2}
    assert replace_value(live, {"c": 3}) is live
    assert live == {"c": 3}
