"""The checkout of planted bug 2: one charge per order, through a requester with retries."""


def on_order(args, to_send, states, config):
    reply = to_send("connection", "payments", {"order_id": args["order_id"],
                                               "amount": args["amount"]})
    return {"charged": reply["charged"]}


connection_models = {
    "in": {"order": {"connection_type": "replyer",
                     "required_creation_arguments": {"on_new_request": on_order},
                     "required_arguments": {"order_id": str, "amount": int},
                     "required_return_arguments": {"charged": int}}},
    "out": {"payments": {"connection_type": "requester",
                         "optional_creation_arguments": {"timeout_s": 0.5, "retries": 2},
                         "required_arguments": {"order_id": str, "amount": int},
                         "required_return_arguments": {"charged": int}}},
}
