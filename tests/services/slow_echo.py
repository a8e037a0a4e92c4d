"""A replyer whose handler takes `delay_s` per request, so that requests queue up under load."""

import time


def on_new_request(args, to_send, states, config):
    time.sleep(config["delay_s"])
    return {"n": args["n"]}


config_model = {"required": {}, "optional": {"delay_s": float}}


def setup_config(config):
    return {"delay_s": config.get("delay_s", 0.002)}


connection_models = {"in": {"work": {
    "connection_type": "replyer",
    "required_creation_arguments": {"on_new_request": on_new_request},
    "required_arguments": {"n": int},
    "required_return_arguments": {"n": int},
}}}
