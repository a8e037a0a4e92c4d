"""Connection and state models: checked once at load time, compiled into specs.

A model is the dict a service author writes (`connection_type`, argument types, creation
arguments). A spec is what the runtime uses: side, type, checkers, handler, creation values.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .errors import ModelError
from .wire.validation import ArgsChecker

CONNECTION_SIDES = {
    "replyer": "in",
    "subscriber": "in",
    "requester": "out",
    "publisher": "out",
    "external_target": "out",
    "external_request": "out",  # 0.0.12 spelling of external_target
}
STATE_KINDS = {
    "full_update_out": ("full", "out"),
    "full_update_in": ("full", "in"),
    "delta_update_out": ("delta", "out"),
    "delta_update_in": ("delta", "in"),
    "local_variable_delta_update": ("delta", None),  # 0.0.12: the delta type of either side
}
_ARGUMENT_KEYS = (
    "required_creation_arguments", "optional_creation_arguments",
    "required_arguments", "optional_arguments",
    "required_return_arguments", "optional_return_arguments",
)
CONNECTION_MODEL_KEYS = frozenset(
    ("connection_type", "required_connection_arguments", "optional_connection_arguments")
    + _ARGUMENT_KEYS)
STATE_MODEL_KEYS = frozenset(
    ("state_type", "required_state_arguments", "optional_state_arguments") + _ARGUMENT_KEYS)
# Keys an inbound connection's handler may be given under; any other single callable works.
HANDLER_KEYS = {"replyer": "on_new_request", "subscriber": "on_new_message"}
# Protocol fields 0.0.12 state models declared; the framework owns them now.
STATE_PROTOCOL_KEYS = frozenset(("current_num", "is_snapshot"))


@dataclass
class ConnectionSpec:
    name: str
    side: str
    type: str
    creation: dict[str, Any]
    args: ArgsChecker
    returns: ArgsChecker | None
    handler: Callable | None = None

    @property
    def where(self) -> str:
        return f"connection_models.{self.side}.{self.name}"


@dataclass
class StateSpec:
    name: str
    side: str
    kind: str  # 'full' or 'delta'
    type: str
    creation: dict[str, Any]
    value: ArgsChecker
    protocol_keys: frozenset[str] = field(default_factory=frozenset)
    on_update: Callable | None = None

    @property
    def where(self) -> str:
        return f"state_models.{self.side}.{self.name}"


def _mapping(model: Mapping, key: str, where: str) -> dict:
    value = model.get(key) or {}
    if not isinstance(value, Mapping):
        raise ModelError(f"{where}.{key}: expected a dict, got {type(value).__name__}")
    return dict(value)


def _check_keys(model: Any, allowed: frozenset[str], type_key: str, where: str) -> None:
    if not isinstance(model, Mapping):
        raise ModelError(f"{where}: a model must be a dict, got {type(model).__name__}")
    unknown = sorted(set(model) - allowed)
    if unknown:
        raise ModelError(f"{where}: unknown model key {unknown[0]!r} "
                         f"(known keys: {', '.join(sorted(allowed))})")
    if type_key not in model:
        raise ModelError(f"{where}: missing {type_key!r}")


def _sides(models: Any, what: str) -> dict[str, dict]:
    if models is None:
        return {"in": {}, "out": {}}
    if not isinstance(models, Mapping):
        raise ModelError(f"{what}: expected {{'in': {{...}}, 'out': {{...}}}}, "
                         f"got {type(models).__name__}")
    unknown = sorted(set(models) - {"in", "out"})
    if unknown:
        raise ModelError(f"{what}: unknown side {unknown[0]!r} (expected 'in' and 'out')")
    return {side: _mapping(models, side, what) for side in ("in", "out")}


def _creation(model: Mapping, setup: Mapping | None, prefix: str, where: str) -> dict:
    creation: dict[str, Any] = {}
    for key in (f"required_{prefix}_arguments", f"optional_{prefix}_arguments",
                "optional_creation_arguments", "required_creation_arguments"):
        if prefix == "state" and key.endswith("state_arguments"):
            continue  # state arguments are protocol field types, not values
        creation.update(_mapping(model, key, where))
    if setup:
        if not isinstance(setup, Mapping):
            raise ModelError(f"{where}: setup_* must return a dict of arguments, "
                             f"got {type(setup).__name__}")
        creation.update(setup)
    return creation


_POSITIVE = "a number > 0"


def _number(minimum: float, strict: bool) -> Callable[[Any], bool]:
    def check(value: Any) -> bool:
        return (isinstance(value, (int, float)) and not isinstance(value, bool)
                and math.isfinite(value) and (value > minimum if strict else value >= minimum))
    return check


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _flag(value: Any) -> bool:
    return isinstance(value, bool)


def _topic(value: Any) -> bool:
    return isinstance(value, (str, bytes))


_TOPIC = (_topic, "a str or bytes topic")
_HWM = (_number(0, True), "an int > 0")
# Creation arguments the framework reads, per connection/state type: (check, expected).
# Others are kept for the service's own use, unchecked. Two come from 0.0.12 and mean what
# they meant there (docs/migration.md):
# - `is_x_pub` (publisher, out-state): connect the publisher socket to an XSUB/XPUB proxy
#   instead of binding (`addresses.socket_needs`); an out-state still binds its replyer.
# - `wait_after_creation_s` (publisher, out-state): 0.0.12 slept that long after creating
#   the socket; here the first send waits up to that long, until a subscriber (at least
#   one, or `min_subscribers`) has joined, without a sleep (`connections.publisher`,
#   `states.out_state`). 0 means no wait.
_CREATION_RULES: dict[str, dict[str, tuple[Callable[[Any], bool], str]]] = {
    "replyer": {"dedupe": (_integer, "an int >= 0: replies kept to answer a repeated id")},
    "requester": {"timeout_s": (_number(0, True), _POSITIVE),
                  "retries": (_integer, "an int >= 0")},
    "publisher": {"topic": _TOPIC, "is_x_pub": (_flag, "a bool"), "hwm": _HWM,
                  "min_subscribers": (_integer, "an int >= 0"),
                  "wait_for_subscribers_s": (_number(0, False), "a number >= 0"),
                  "wait_after_creation_s": (_number(0, False), "a number >= 0")},
    "subscriber": {"topic": _TOPIC, "is_binder": (_flag, "a bool")},
    "state": {"topic": _TOPIC, "hwm": _HWM, "heartbeat_s": (_number(0, True), _POSITIVE),
              "snapshot_timeout_s": (_number(0, True), _POSITIVE),
              "max_buffer_bytes": (_number(0, True), "an int > 0"),
              "is_x_pub": (_flag, "a bool"),
              "wait_after_creation_s": (_number(0, False), "a number >= 0")},
}


# Creation arguments that hold something other than a checked value: handlers, targets.
_OTHER_CREATION_KEYS: dict[str, frozenset[str]] = {
    "replyer": frozenset({"on_new_request"}),
    "subscriber": frozenset({"on_new_message"}),
    "external_target": frozenset({"target", "func_to_call"}),
    "state": frozenset({"on_update"}),
}
# 0.0.12 named an inbound handler after what it handles (`on_new_cancel_order`, SPEC §3):
# a callable under such a key is the handler too.
_HANDLER_PREFIX = "on_new_"


def known_creation_keys(kind: str) -> frozenset[str]:
    """The creation arguments a connection or state type takes (`kind`: a connection type,
    or "state")."""
    return frozenset(_CREATION_RULES.get(kind, {})) | _OTHER_CREATION_KEYS.get(kind, frozenset())


def _check_creation(kind: str, creation: Mapping, where: str) -> None:
    """Values the framework itself reads are checked at load, not when sockets open; an
    unknown key is a typo until proven otherwise (a default would silently be used)."""
    known = known_creation_keys(kind)
    for key in creation:
        if key in known or (isinstance(key, str) and key.startswith(_HANDLER_PREFIX)
                            and kind in ("replyer", "subscriber") and callable(creation[key])):
            continue
        near = difflib.get_close_matches(str(key), sorted(known), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ModelError(f"{where}: unknown creation argument {key!r}{hint} (a {kind} takes "
                         f"{', '.join(sorted(known)) or 'none'})")
    for key, (check, expected) in _CREATION_RULES.get(kind, {}).items():
        if key in creation and not check(creation[key]):
            raise ModelError(f"{where}.{key}: expected {expected}, got {creation[key]!r}")


_OTHER_MEANINGS = {
    "on_new_request": "the handler: (args, to_send, states, config) -> reply args",
    "on_new_message": "the handler: (args, to_send, states, config)",
    "target": "a callable or an import path; to_send calls target(**args)",
    "func_to_call": "0.0.12's name of target",
    "on_update": "in-states: (update, to_send, states, config) after each applied update",
}


def creation_table() -> list[tuple[str, str, str]]:
    """(type, creation argument, what it takes) for every type: what `_check_creation`
    accepts, so the documentation's table cannot drift from it."""
    rows = []
    for kind in ("replyer", "requester", "publisher", "subscriber", "external_target",
                 "state"):
        for key in sorted(known_creation_keys(kind)):
            rule = _CREATION_RULES.get(kind, {}).get(key)
            rows.append((kind, key, rule[1] if rule else _OTHER_MEANINGS[key]))
    return rows


def check_signature(function: Callable, count: int, where: str, expected: str) -> None:
    """A ModelError unless `function` can be called with `count` positional arguments
    (callables whose signature Python cannot read, such as some builtins, pass)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*range(count))
    except TypeError as error:
        raise ModelError(f"{where}: expected {expected}, but {_name(function)}{signature} "
                         f"cannot be called so ({error})") from None


def _name(function: Callable) -> str:
    return getattr(function, "__qualname__", None) or type(function).__name__


HANDLER_SIGNATURE = "handler(args, to_send, states, config)"


def _find_handler(creation: Mapping, preferred: str | None, where: str,
                  required: bool) -> Callable | None:
    if preferred and preferred in creation:
        handler = creation[preferred]
        if not callable(handler):
            raise ModelError(f"{where}.{preferred}: expected a callable handler, "
                             f"got {type(handler).__name__}")
        return handler
    callables = [key for key, value in creation.items()
                 if callable(value) and not isinstance(value, type)
                 and isinstance(key, str) and key.startswith(_HANDLER_PREFIX)]
    if len(callables) == 1:
        return creation[callables[0]]
    if len(callables) > 1:
        raise ModelError(f"{where}: several callables in creation arguments "
                         f"({', '.join(sorted(callables))}); name the handler {preferred!r}")
    if required:
        raise ModelError(f"{where}: missing handler (a callable under {preferred!r} in "
                         "creation arguments or setup_connections)")
    return None


def _typed_models(models: Any, what: str, allowed: frozenset[str], type_key: str,
                  known: Mapping[str, Any], type_label: str):
    """(side, name, model, type, where) of every model, its keys and its type checked."""
    for side, named in _sides(models, what).items():
        for name, model in named.items():
            where = f"{what}.{side}.{name}"
            _check_keys(model, allowed, type_key, where)
            model_type = model[type_key]
            if model_type not in known:
                raise ModelError(f"{where}.{type_key}: unknown {type_label} {model_type!r} "
                                 f"(known: {', '.join(sorted(known))})")
            yield side, name, model, model_type, where


def _checker(owner: str, model: Mapping, suffix: str, where: str) -> ArgsChecker:
    """The checker of `required_<suffix>` and `optional_<suffix>` of a model."""
    return ArgsChecker(owner, _mapping(model, f"required_{suffix}", where),
                       _mapping(model, f"optional_{suffix}", where), where=where)


def _check_setup_names(setup: Mapping, specs: Mapping, hook: str, what: str) -> None:
    unknown = sorted(set(setup) - {name for _, name in specs})
    if unknown:
        raise ModelError(f"{hook}: {unknown[0]!r} is not a {what} of this service")


def connection_specs(models: Any, setup: Mapping | None) -> dict[tuple[str, str], ConnectionSpec]:
    """Validates `connection_models` and builds one spec per connection."""
    setup = setup or {}
    specs: dict[tuple[str, str], ConnectionSpec] = {}
    for side, name, model, kind, where in _typed_models(
            models, "connection_models", CONNECTION_MODEL_KEYS, "connection_type",
            CONNECTION_SIDES, "connection type"):
        if CONNECTION_SIDES[kind] != side:
            raise ModelError(f"{where}: a {kind} is an {CONNECTION_SIDES[kind]!r} "
                             f"connection, not {side!r}")
        kind = "external_target" if kind == "external_request" else kind
        creation = _creation(model, setup.get(name), "connection", where)
        _check_creation(kind, creation, where)
        handler = None
        if kind == "external_target":
            target = creation.pop("func_to_call", None) or creation.get("target")
            if target is None:
                raise ModelError(f"{where}: an external_target needs a 'target' "
                                 "creation argument (a callable or an import path)")
            creation["target"] = resolve_target(target, where)
        if side == "in":
            handler = _find_handler(creation, HANDLER_KEYS.get(kind), where, required=True)
            check_signature(handler, 4, f"{where} handler", HANDLER_SIGNATURE)
        args = _checker(f"connection {name!r} arguments", model, "arguments", where)
        returns = None
        if kind in ("replyer", "requester", "external_target"):
            returns = _checker(f"connection {name!r} return arguments", model,
                               "return_arguments", where)
        specs[(side, name)] = ConnectionSpec(name, side, kind, creation, args, returns,
                                             handler)
    _check_setup_names(setup, specs, "setup_connections", "connection")
    return specs


def state_specs(models: Any, setup: Mapping | None) -> dict[tuple[str, str], StateSpec]:
    """Validates `state_models` and builds one spec per state."""
    setup = setup or {}
    specs: dict[tuple[str, str], StateSpec] = {}
    for side, name, model, state_type, where in _typed_models(
            models, "state_models", STATE_MODEL_KEYS, "state_type", STATE_KINDS, "state type"):
        kind, type_side = STATE_KINDS[state_type]
        if type_side is not None and type_side != side:
            raise ModelError(f"{where}: a {state_type} state belongs under {type_side!r}, "
                             f"not {side!r}")
        protocol = {**_mapping(model, "required_state_arguments", where),
                    **_mapping(model, "optional_state_arguments", where)}
        unknown = sorted(set(protocol) - STATE_PROTOCOL_KEYS)
        if unknown:
            raise ModelError(f"{where}: unknown state argument {unknown[0]!r} "
                             f"(known: {', '.join(sorted(STATE_PROTOCOL_KEYS))})")
        creation = _creation(model, setup.get(name), "state", where)
        _check_creation("state", creation, where)
        on_update = creation.get("on_update")
        if on_update is not None and not callable(on_update):
            raise ModelError(f"{where}.on_update: expected a callable, "
                             f"got {type(on_update).__name__}")
        if on_update is not None and side == "out":
            raise ModelError(f"{where}.on_update: only in-states take an on_update handler")
        if on_update is not None:
            check_signature(on_update, 4, f"{where}.on_update", HANDLER_SIGNATURE)
        value = _checker(f"state {name!r}", model, "arguments", where)
        specs[(side, name)] = StateSpec(name, side, kind, state_type, creation, value,
                                        frozenset(protocol), on_update)
    _check_setup_names(setup, specs, "setup_states", "state")
    return specs


def resolve_target(value: Any, where: str) -> Callable:
    """An external target: a callable, or an import path resolved now, never from the wire.

    Accepts "package.module:attr.path" and "package.module.Class.method".
    """
    if callable(value):
        return value
    if not isinstance(value, str) or not value:
        raise ModelError(f"{where}.target: expected a callable or an import path string, "
                         f"got {type(value).__name__}")
    if ":" in value:
        module_name, _, attr_path = value.partition(":")
        attrs = attr_path.split(".")
    else:
        parts = value.split(".")
        module_name, attrs = "", parts
        for cut in range(len(parts) - 1, 0, -1):  # longest importable module prefix
            try:
                importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            module_name, attrs = ".".join(parts[:cut]), parts[cut:]
            break
    try:
        target: Any = importlib.import_module(module_name)
        for attr in attrs:
            target = getattr(target, attr)
    except (ImportError, AttributeError, ValueError) as error:
        raise ModelError(f"{where}.target: cannot resolve {value!r}: {error}") from error
    if not callable(target):
        raise ModelError(f"{where}.target: {value!r} is not callable")
    return target
