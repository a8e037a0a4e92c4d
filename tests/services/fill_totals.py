"""An in-state consumer keeping derived data: the total quantity of all fills.

`on_update` adds a delta's new fills, and recomputes from the whole value when it is given a
snapshot (after a gap, or when the out side restarted), so no fill is counted twice or lost.
The `total` replyer answers with the total and whether the state is in sync.
"""

connection_models = {"in": {"total": {
    "connection_type": "replyer",
    "required_creation_arguments": {"on_new_request": lambda args, to_send, states, config: {
        "total": TOTALS["total"], "synced": states.is_synced("fills")}},
    "required_return_arguments": {"total": int, "synced": bool},
}}}

state_models = {"in": {"fills": {
    "state_type": "delta_update_in",
    "optional_arguments": {"fills": {str: int}},
    "optional_creation_arguments": {"on_update": lambda *a: on_fills(*a)},
}}}

TOTALS = {"total": 0}
KINDS: list[tuple[str, bool]] = []  # (kind, new_epoch) of every update on_update saw


def init_function(to_send, states, config):
    TOTALS["total"] = 0
    KINDS.clear()


def on_fills(update, to_send, states, config):
    KINDS.append((update.kind, update.new_epoch))
    if update.kind == "snapshot":  # the whole value: derived data starts again from it
        TOTALS["total"] = sum(states["fills"].get("fills", {}).values())
    else:
        TOTALS["total"] += sum(qty for qty in update.get("fills", {}).values() if qty)
