"""Books a seat in two steps at the inventory: reserve it, then commit the reservation.

A crash between the two requests leaves a reservation that was never committed.
"""


def on_book(args, to_send, states, config):
    to_send("connection", "reserve", {"seat": args["seat"]})
    to_send("connection", "commit", {"seat": args["seat"]})
    return {"seat": args["seat"]}


_SEAT = {"required_arguments": {"seat": str}, "optional_creation_arguments": {"timeout_s": 1.0}}

connection_models = {
    "in": {"book": {"connection_type": "replyer",
                    "required_creation_arguments": {"on_new_request": on_book},
                    "required_arguments": {"seat": str},
                    "required_return_arguments": {"seat": str}}},
    "out": {"reserve": {"connection_type": "requester", **_SEAT},
            "commit": {"connection_type": "requester", **_SEAT}},
}
