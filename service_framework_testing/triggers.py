"""When a fault plan's entry fires, and how an entry is written as the Python call that
makes it (the plan's `log` and `describe()`).

An action with a trigger is scheduled, not applied at once:
- `at=2.5`: when virtual time reaches 2.5 s (`bus.clock.monotonic()`, from the bus's start);
- `after=("gateway", "orders", 3)`: right after the 3rd delivery (1-based, counted from
  when the entry was made) on the link gateway -> orders (services, or "service.component"
  owners; None for any);
- `on=predicate`: right after the first delivery whose `Packet` makes `predicate` true.
A delivery never applies the action inside itself: it queues it for the current instant,
before the next service steps.
"""

from __future__ import annotations

import ast
import io
import json
import linecache
import tokenize
from dataclasses import dataclass, field
from typing import Any, Callable

from service_framework.transport.base import Packet

__all__ = ["Trigger", "Planned", "call_text"]


@dataclass
class Trigger:
    at: float | None = None
    after: tuple[str | None, str | None, int] | None = None
    on: Callable[[Packet], bool] | None = None
    count: int = 0  # deliveries seen on the `after` link

    @classmethod
    def make(cls, at: float | None, after: Any, on: Callable | None) -> "Trigger | None":
        given = sum(x is not None for x in (at, after, on))
        if given == 0:
            return None
        if given > 1:
            raise ValueError("give one trigger: at=, after= or on=")
        if at is not None and not isinstance(at, (int, float)):
            raise ValueError(f"at= is seconds of virtual time, got {at!r}")
        if after is not None:
            if not (isinstance(after, (tuple, list)) and len(after) == 3
                    and isinstance(after[2], int) and after[2] >= 1):
                raise ValueError("after= is (from, to, n): the nth delivery (from 1) on the "
                                 f"link from -> to; got {after!r}")
            after = (after[0], after[1], after[2])
        if on is not None and not callable(on):
            raise ValueError(f"on= is a predicate on the delivered Packet, got {on!r}")
        return cls(at=at, after=after, on=on)

    @property
    def on_delivery(self) -> bool:
        return self.at is None

    def delivered(self, packet: Packet) -> bool:
        """Whether this delivery fires it (counts it for `after=`)."""
        if self.on is not None:
            return bool(self.on(packet))
        src, dst, n = self.after
        if _is(src, packet.src_service, packet.src) and _is(dst, packet.dst_service,
                                                             packet.dst):
            self.count += 1
            return self.count == n
        return False


def _is(name: str | None, service: str | None, owner: str | None) -> bool:
    return name is None or name == service or name == owner


@dataclass(eq=False)
class Planned:
    """A scheduled entry of a plan: `call` is its text, `apply(now)` does it (returning a
    note for the log when it could not: "skipped: …")."""

    action: str
    call: str
    trigger: Trigger
    apply: Callable[[float], str | None] = field(repr=False)
    handle: int | None = None  # the transport's timer, once queued
    queued: bool = False
    fired_at: float | None = None
    cancelled: bool = False


# -- calls as text ------------------------------------------------------------------------
def call_text(prefix: str, action: str, args: tuple = (), kwargs: dict | None = None) -> str:
    """`prefix.action(args, key=value, …)` with values written as Python a test can paste
    (a named function by its name, a lambda by its source when it can be found)."""
    parts = [value_text(arg) for arg in args]
    parts += [f"{key}={value_text(value)}" for key, value in (kwargs or {}).items()]
    return f"{prefix}.{action}({', '.join(parts)})"


def value_text(value: Any) -> str:
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        return text if "\\" not in text else repr(value)
    if isinstance(value, tuple):
        inner = ", ".join(value_text(item) for item in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(value_text(item) for item in value) + "]"
    if isinstance(value, (set, frozenset)):
        if not value:
            return "set()"
        return "{" + ", ".join(sorted(value_text(item) for item in value)) + "}"
    if callable(value) and hasattr(value, "__code__"):
        name = getattr(value, "__name__", "")
        if name == "<lambda>":
            return lambda_source(value) or "<lambda>"
        return name
    return repr(value)


def lambda_source(function: Callable) -> str | None:
    """The text of a lambda where it was written, or None when it cannot be found."""
    code = function.__code__
    lines = linecache.getlines(code.co_filename)
    text = "".join(lines[code.co_firstlineno - 1:code.co_firstlineno + 19])
    params = list(code.co_varnames[:code.co_argcount])
    start = text.find("lambda")
    while start >= 0:
        expression = _expression_at(text, start)
        if expression is not None:
            try:
                node = ast.parse(expression, mode="eval").body
            except SyntaxError:
                node = None
            if isinstance(node, ast.Lambda) and [a.arg for a in node.args.args] == params:
                return expression
        start = text.find("lambda", start + 6)
    return None


def _expression_at(text: str, start: int) -> str | None:
    """The expression starting at `start`, up to a comma or closing bracket at its level."""
    depth, end = 0, None
    offsets = [0]
    for line in io.StringIO(text[start:]):
        offsets.append(offsets[-1] + len(line))
    try:
        for token in tokenize.generate_tokens(io.StringIO(text[start:]).readline):
            here = offsets[token.start[0] - 1] + token.start[1]
            if token.type == tokenize.OP and token.string in "([{":
                depth += 1
            elif token.type == tokenize.OP and token.string in ")]}":
                if depth == 0:
                    end = here
                    break
                depth -= 1
            elif (token.type == tokenize.OP and token.string == "," and depth == 0) or (
                    token.type in (tokenize.NEWLINE, tokenize.ENDMARKER) and depth == 0):
                end = here
                break
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return None
    return None if end is None else text[start:start + end].strip()
