"""Request and reply envelopes (SPEC §8) on top of the codec.

A request is `{"v": 1, "workflow_id", "args", "rid"}`; a reply carries the same `rid` and
either `return_args` or `error: {type, message}`. `rid` lets a requester that retried drop
a late answer to a request it gave up on. A publication may add `pub` (who published it)
and `seq` (its number from that publisher, from 1), so a subscriber can count what it lost:
libzmq tells a publisher nothing of the copies it dropped for a full subscriber. Peers
that send neither are accepted.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ..errors import EnvelopeError
from . import codec

VERSION = 1


class Request(NamedTuple):
    workflow_id: str
    args: Any
    rid: Any
    origin: Any = None  # a publication's `pub`
    seq: Any = None  # a publication's number


class Reply(NamedTuple):
    workflow_id: str
    rid: Any
    return_args: Any
    error: dict | None


def encode_request(workflow_id: str, args: Any, rid: Any = None, *, max_bytes: int) -> bytes:
    return codec.pack({"v": VERSION, "workflow_id": workflow_id, "args": args, "rid": rid},
                      max_bytes=max_bytes)


def encode_publication(workflow_id: str, args: Any, origin: str, seq: int, *,
                       max_bytes: int) -> bytes:
    return codec.pack({"v": VERSION, "workflow_id": workflow_id, "args": args, "rid": None,
                       "pub": origin, "seq": seq}, max_bytes=max_bytes)


def encode_reply(workflow_id: str, rid: Any, return_args: Any, *, max_bytes: int) -> bytes:
    return codec.pack(
        {"v": VERSION, "workflow_id": workflow_id, "return_args": return_args, "rid": rid},
        max_bytes=max_bytes,
    )


def encode_error(workflow_id: str, rid: Any, error_type: str, message: str) -> bytes:
    # Error bodies are small and made of strings, so they always fit and always encode.
    return codec.pack({"v": VERSION, "workflow_id": workflow_id, "rid": rid,
                       "error": {"type": error_type, "message": message[:4000]}})


_unpack = codec.unpack
_new_tuple = tuple.__new__


def _envelope(body: bytes, max_bytes: int) -> dict:
    return _checked(_unpack(body, max_bytes=max_bytes))


def _checked(message: Any) -> dict:
    if not isinstance(message, dict):
        raise EnvelopeError(f"expected an envelope map, got {type(message).__name__}")
    version = message.get("v")
    if version.__class__ is not int or version != VERSION:  # True == 1, but is no version
        raise EnvelopeError(f"unsupported envelope version {version!r} "
                            f"(this side speaks {VERSION})")
    workflow_id = message.get("workflow_id")
    if workflow_id is not None and not isinstance(workflow_id, str):
        raise EnvelopeError("envelope workflow_id must be a string")
    return message


def decode_request(body: bytes, *, max_bytes: int) -> Request:
    """The request in `body`; `EnvelopeError` or `CodecError` when it is not one.

    On the hot path of every request and publication: a well-formed envelope is
    recognised with a few identity checks and built without the NamedTuple constructor.
    """
    message = _unpack(body, max_bytes=max_bytes)
    if message.__class__ is dict and "args" in message:
        version, workflow_id = message.get("v"), message.get("workflow_id")
        if version.__class__ is int and version == VERSION and workflow_id.__class__ is str:
            return _new_tuple(Request, (workflow_id, message["args"], message.get("rid"),
                                        message.get("pub"), message.get("seq")))
    message = _checked(message)
    if "args" not in message:
        raise EnvelopeError("request envelope has no 'args'")
    return Request(message.get("workflow_id") or "", message["args"], message.get("rid"),
                   message.get("pub"), message.get("seq"))


def decode_reply(body: bytes, *, max_bytes: int) -> Reply:
    message = _envelope(body, max_bytes)
    error = message.get("error")
    if error is not None:
        if not isinstance(error, dict):
            raise EnvelopeError("reply envelope 'error' must be a map")
        error = {"type": str(error.get("type", "Error")), "message": str(error.get("message", ""))}
    elif "return_args" not in message:
        raise EnvelopeError("reply envelope has neither 'return_args' nor 'error'")
    return Reply(message.get("workflow_id") or "", message.get("rid"),
                 message.get("return_args"), error)
