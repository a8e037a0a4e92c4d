"""Loads a service module and validates all of it before anything binds."""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from . import addresses as _addresses
from . import config as _config
from . import security as _security
from .addresses import socket_plan
from .errors import ConfigError, ModelError
from .models import ConnectionSpec, StateSpec, connection_specs, state_specs

HOOK_NAMES = ("main", "init_function", "sigint_handler", "sigterm_handler")


@dataclass
class ServiceDefinition:
    """Everything the runtime needs, validated: a loaded service, ready to bind."""

    name: str
    module: types.ModuleType
    config: dict[str, Any]
    addresses: dict[str, Any]
    connections: dict[tuple[str, str], ConnectionSpec]
    states: dict[tuple[str, str], StateSpec]
    main: Callable | None = None
    main_takes_states: bool = False
    init_function: Callable | None = None
    signal_handlers: dict[str, Callable] = field(default_factory=dict)
    main_mode: bool = False
    security: "_security.Security | None" = None  # CurveZMQ, from addresses' `security`


def import_service(spec: str | os.PathLike | types.ModuleType) -> types.ModuleType:
    """Imports a service from a path (relative, `../` or absolute) or returns the module."""
    if isinstance(spec, types.ModuleType):
        return spec
    path = Path(spec).expanduser()
    if not path.is_absolute():
        path = (Path.cwd() / path)
    path = path.resolve()
    if not path.is_file():
        raise ConfigError(f"service file not found: {spec}")
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # the service's sibling modules import as usual
    module_name = f"_sf_service_{path.stem}_{abs(hash(str(path))):x}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"cannot import service file {spec} (not a Python module)")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:
        sys.modules.pop(module_name, None)
        raise ModelError(f"{spec}: importing the service failed: "
                         f"{type(error).__name__}: {error}") from error
    return module


def _positional_count(function: Callable, where: str) -> int:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError) as error:
        raise ModelError(f"{where}: cannot read the signature of {function!r}") from error
    params = list(signature.parameters.values())
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return -1
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def _call_hook(module: types.ModuleType, name: str, *args: Any) -> Any:
    hook = getattr(module, name, None)
    if hook is None:
        return None
    if not callable(hook):
        raise ModelError(f"{name}: expected a function, got {type(hook).__name__}")
    try:
        return hook(*args)
    except (ModelError, ConfigError):
        raise
    except Exception as error:
        raise ModelError(f"{name} raised {type(error).__name__}: {error}") from error


def _hook_dict(value: Any, name: str) -> dict | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ModelError(f"{name} must return a dict, got {type(value).__name__}")
    return dict(value)


def load_service(spec: str | os.PathLike | types.ModuleType, *,
                 config: Mapping | str | os.PathLike | None = None,
                 extras: Mapping[str, str] | None = None,
                 addresses: Mapping | str | os.PathLike | None = None,
                 main_mode: bool = False,
                 addresses_for: Callable[["ServiceDefinition"], Mapping] | None = None,
                 ) -> ServiceDefinition:
    """Imports and validates a service: config, models, hooks and addresses.

    Raises ModelError or ConfigError naming the place; nothing is bound here.
    `addresses_for`, when no addresses are given, makes them from the loaded models (the
    test harness uses it to hand out free ports).
    """
    module = import_service(spec)
    name = Path(getattr(module, "__file__", None) or module.__name__).stem
    config_model = getattr(module, "config_model", None)
    file_config = overrides = None
    if isinstance(config, (str, os.PathLike)):
        file_config = _config.load_config_file(config)
    elif config is not None:
        overrides = _config.flatten_sections(config)
    setup_config = getattr(module, "setup_config", None)
    resolved = _config.build_config(config_model, file_config=file_config, extras=extras,
                                    overrides=overrides, setup_config=setup_config)

    connection_models = getattr(module, "connection_models", None)
    if hasattr(module, "setup_connection_models"):
        connection_models = _call_hook(module, "setup_connection_models",
                                       connection_models, resolved)
    state_models = getattr(module, "state_models", None)
    if hasattr(module, "setup_state_models"):
        state_models = _call_hook(module, "setup_state_models", state_models, resolved)

    connections = connection_specs(
        connection_models, _hook_dict(_call_hook(module, "setup_connections", resolved),
                                      "setup_connections"))
    states = state_specs(
        state_models, _hook_dict(_call_hook(module, "setup_states", resolved), "setup_states"))

    loaded_addresses = _addresses.load_addresses(addresses)
    file_addresses = loaded_addresses
    if hasattr(module, "setup_addresses"):
        loaded_addresses = _hook_dict(
            _call_hook(module, "setup_addresses", loaded_addresses, resolved),
            "setup_addresses") or {}

    definition = ServiceDefinition(name=name, module=module, config=resolved,
                                   addresses=loaded_addresses, connections=connections,
                                   states=states, main_mode=main_mode)
    for hook in HOOK_NAMES:
        value = getattr(module, hook, None)
        if value is not None and not callable(value):
            raise ModelError(f"{hook}: expected a function, got {type(value).__name__}")
    definition.init_function = getattr(module, "init_function", None)
    for signal_name in ("sigint", "sigterm"):
        handler = getattr(module, f"{signal_name}_handler", None)
        if handler is not None:
            definition.signal_handlers[signal_name.upper()] = handler
    if addresses is None and addresses_for is not None:
        definition.addresses = dict(addresses_for(definition))
    if main_mode:
        require_main_mode(definition)
    _check_addresses(definition)
    _load_security(definition, file_addresses)
    return definition


def require_main_mode(definition: ServiceDefinition) -> None:
    """Main mode needs `main(to_send[, states], config)` and allows no in-states."""
    main = getattr(definition.module, "main", None)
    if main is None:
        raise ModelError(f"{definition.name}: main mode needs a main(to_send, config) function")
    arity = _positional_count(main, "main")
    if arity not in (2, 3, -1):
        raise ModelError("main: expected main(to_send, config) or "
                         f"main(to_send, states, config), it takes {arity} arguments")
    definition.main, definition.main_takes_states = main, arity != 2
    definition.main_mode = True
    in_states = [state_name for side, state_name in definition.states if side == "in"]
    if in_states:
        raise ModelError(f"state_models.in.{in_states[0]}: in-states are not allowed "
                         "in main mode")


def _load_security(definition: ServiceDefinition, file_addresses: Mapping) -> None:
    """Reads and checks the key files of the `security` section (SPEC §15), if any.

    A `setup_addresses` result without a section keeps the file's: security is never
    turned off by omission. Relative key paths are resolved against the file's folder.
    """
    section = definition.addresses.get("security", file_addresses.get("security"))
    definition.security = _security.load_security(
        section, service=definition.name, plan=socket_plan(definition),
        source=getattr(file_addresses, "source", None))


def _check_addresses(definition: ServiceDefinition) -> None:
    """Every socket that needs an address has one (validated, not bound)."""
    for entry in socket_plan(definition):
        _addresses.endpoints(definition.addresses, entry.section, entry.side, entry.name,
                             entry.key, many=entry.many)
