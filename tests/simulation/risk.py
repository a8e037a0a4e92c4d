"""Planted bug 3 (with gate.py): risk owns the limits, an out-state the gate follows."""


def init_function(to_send, states, config):
    to_send("state", "limits", {"max_qty": 10})  # a delta: the gate needs a snapshot


state_models = {"out": {"limits": {"state_type": "delta_update_out",
                                   "optional_arguments": {"max_qty": int}}}}
