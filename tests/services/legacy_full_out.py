"""A 0.0.12-style full-update out-state, given only its publisher address."""


def main(to_send, config):
    for num in range(1, 4):
        to_send("state", "num_state", {"num": num})


state_models = {"out": {"num_state": {"state_type": "full_update_out",
                                      "required_arguments": {"num": int}}}}
