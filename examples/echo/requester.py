"""Echo requester (main mode): sends `count` requests, prints the replies, then stops."""

from datetime import datetime, timezone
from decimal import Decimal

connection_models = {
    "out": {
        "echo": {
            "connection_type": "requester",
            "required_arguments": {"text": str},
            "optional_arguments": {"amount": Decimal, "at": datetime},
            "required_return_arguments": {"text": str, "count": int},
            "optional_return_arguments": {"amount": Decimal, "at": datetime},
            "optional_creation_arguments": {"timeout_s": 2.0, "retries": 2},
        }
    }
}
config_model = {"optional": {"count": int, "text": str}}


def main(to_send, config):
    for number in range(config.get("count", 3)):
        reply = to_send("connection", "echo", {
            "text": f"{config.get('text', 'hello')} {number}",
            "amount": Decimal("1.50") * number,
            "at": datetime(2030, 1, 1, tzinfo=timezone.utc),
        })
        print(f"reply {number}: {reply['text']} (count={reply['count']}, "
              f"amount={reply['amount']})", flush=True)
