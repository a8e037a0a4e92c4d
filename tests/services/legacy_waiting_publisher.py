"""A 0.0.12-style publisher that gives subscribers `wait_after_creation_s` to join."""


def main(to_send, config):
    to_send("connection", "publish_int", {"num": 1})


connection_models = {"out": {"publish_int": {
    "connection_type": "publisher",
    "required_creation_arguments": {"wait_after_creation_s": 2.0},
    "required_arguments": {"num": int},
}}}
