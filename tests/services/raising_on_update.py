"""An in-state whose `on_update` raises: the state stays in sync, a test must hear of it."""


def on_update(args, to_send, states, config):
    raise LookupError(f"no handler for {sorted(args)}")


state_models = {"in": {"prices": {
    "state_type": "delta_update_in",
    "optional_arguments": {"last": int},
    "optional_creation_arguments": {"on_update": on_update},
}}}
