"""A replyer whose handler comes from a module named in config (the documented
`setup_connections(config)` pattern); `db_password` and `api` are secrets of its config."""

import importlib

from service_framework import Secret

connection_models = {"in": {"ask": {
    "connection_type": "replyer",
    "required_arguments": {"q": str},
    "required_return_arguments": {"a": str},
}}}
config_model = {"optional": {"plugin": str, "db_password": str, "api": Secret[str],
                             "limit": int}}


def setup_connections(config):
    plugin = importlib.import_module(config.get("plugin", "string"))
    return {"ask": {"on_new_request": lambda args, to_send, states, cfg:
                    {"a": f"{plugin.__name__}:{args['q']}"}}}
