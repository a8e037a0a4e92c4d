"""What a handler may know (issue 16, item 6): whether an in-state is in sync, and whether
`on_update` got a whole new value or a delta — on the memory bus and on real ZeroMQ."""

from pathlib import Path

import pytest

from service_framework import ArgumentError
from service_framework.states.view import StatesView, StateUpdate

FILL_TOTALS = Path(__file__).parent / "services" / "fill_totals.py"


@pytest.fixture(params=["memory", "zmq"])
def totals(request, sf_service):
    return sf_service(FILL_TOTALS, transport=request.param)


def test_a_handler_sees_an_in_state_is_not_synced_before_its_first_snapshot(totals):
    assert totals.request("total", {}) == {"total": 0, "synced": False}


def test_derived_data_is_recomputed_from_the_snapshot_after_a_gap(totals):
    fill_totals = totals.service.definition.module
    source = totals.state_source("fills")
    source.update({"fills": {"a": 2}})
    source.update({"fills": {"b": 3}})
    source.lose({"fills": {"c": 4}})  # the in side misses it: a gap, then a snapshot
    source.update({"fills": {"d": 1}})
    source.catch_up(past_heartbeat=True)
    assert totals.request("total", {}) == {"total": 10, "synced": True}
    kinds = [kind for kind, _ in fill_totals.KINDS]
    assert kinds[0] == "snapshot" and kinds[-1] == "snapshot"  # first sync, then the resync
    if totals.on_memory:  # on ZeroMQ a slow-joining SUB may get the first ones by snapshot
        assert "delta" in kinds


def test_a_restarted_out_side_is_a_new_epoch_with_a_snapshot(totals):
    fill_totals = totals.service.definition.module
    source = totals.state_source("fills")
    source.update({"fills": {"a": 2}})
    source.restart()
    source.update({"fills": {"z": 7}})
    source.catch_up(past_heartbeat=True)
    assert totals.request("total", {}) == {"total": 7, "synced": True}
    assert fill_totals.KINDS[0] == ("snapshot", True)
    assert ("snapshot", True) in fill_totals.KINDS[1:]  # the new epoch starts from a snapshot


def test_states_view_is_read_only_and_names_unknown_states():
    view = StatesView({"book": {"x": 1}}, lambda name: True if name == "book" else None)
    assert view == {"book": {"x": 1}} and view.is_synced("book")
    with pytest.raises(TypeError):
        view["book"] = {}  # type: ignore[index]
    with pytest.raises(ArgumentError, match="'nope' is not a state"):
        view.is_synced("nope")


def test_a_state_update_is_a_dict_that_copies_as_a_plain_dict():
    import copy

    update = StateUpdate({"a": 1}, kind="delta", seq=4, epoch="e1", new_epoch=False)
    assert update == {"a": 1} and not update.is_snapshot and update.seq == 4
    assert type(copy.deepcopy(update)) is dict
