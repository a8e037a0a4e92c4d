"""A 0.0.12-style full-update in-state, given only its subscriber address."""

state_models = {"in": {"num_state": {"state_type": "full_update_in",
                                     "required_arguments": {"num": int}}}}
