"""A replyer `work`: answers `{"n"}` with `{"n", "by": config name, "calls"}`, where
`calls` counts the handler's runs in this process (a retried request runs it again).
Used by `tests/test_conformance.py`.
"""

calls = {"count": 0}


def on_new_request(args, to_send, states, config):
    calls["count"] += 1
    return {"n": args["n"], "by": config.get("name", "worker"), "calls": calls["count"]}


connection_models = {"in": {"work": {
    "connection_type": "replyer",
    "required_creation_arguments": {"on_new_request": on_new_request},
    "required_arguments": {"n": int},
    "required_return_arguments": {"n": int, "by": str, "calls": int},
}}}
config_model = {"optional": {"name": str}}
