"""Loads a service module and validates all of it before anything binds; loads it again
for a restart (`reload_service`: a fresh module, but for its `persistent_globals`)."""

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
from . import models as _models
from . import security as _security
from .addresses import socket_plan
from .errors import ConfigError, ModelError
from .logs import get_logger
from .models import ConnectionSpec, StateSpec, connection_specs, state_specs

log = get_logger()
HOOK_NAMES = ("main", "init_function", "sigint_handler", "sigterm_handler")
# Module-level names a service keeps across a restart (a stand-in for its database).
PERSISTENT_GLOBALS = "persistent_globals"


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
    secret_config_keys: frozenset[str] = frozenset()  # never recorded (config.secret_keys)
    security: "_security.Security | None" = None  # CurveZMQ, from addresses' `security`
    # What `load_service` was given (config, extras, addresses), for `reload_service`;
    # None for a definition made otherwise (it restarts as it is).
    load_arguments: dict[str, Any] | None = None


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
    if os.getcwd() not in sys.path:  # 0.0.12 did this: packages under the working folder
        sys.path.append(os.getcwd())  # import from the console script too (not only -m)
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


def main_takes_states(main: Callable) -> bool:
    """Whether `main` is called as main(to_send, states, config) rather than main(to_send,
    config). What it can be called with decides; when both, its parameters' names do (one
    named `states`, or a `*args` given everything): main(to_send, config, verbose=False)
    gets no states. A ModelError when it can be called with neither."""
    try:
        signature = inspect.signature(main)
    except (TypeError, ValueError):
        return True  # no signature to read (some builtins): given everything, as *args is

    def takes(count: int) -> bool:
        try:
            signature.bind(*range(count))
        except TypeError:
            return False
        return True

    two, three = takes(2), takes(3)
    if not (two or three):
        raise ModelError(f"main: expected main(to_send, config) or main(to_send, states, "
                         f"config), but main{signature} cannot be called so")
    if two and three:
        named = [name for name, parameter in signature.parameters.items()
                 if parameter.kind in (parameter.POSITIONAL_ONLY,
                                       parameter.POSITIONAL_OR_KEYWORD)]
        return "states" in named or len(named) < 2
    return three


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
    persistent_names(module)  # checked now, not at the first restart
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
                                   states=states, main_mode=main_mode,
                                   secret_config_keys=_config.secret_keys(config_model))
    for hook in HOOK_NAMES:
        value = getattr(module, hook, None)
        if value is not None and not callable(value):
            raise ModelError(f"{hook}: expected a function, got {type(value).__name__}")
    definition.init_function = getattr(module, "init_function", None)
    if definition.init_function is not None:
        _models.check_signature(definition.init_function, 3, "init_function",
                                "init_function(to_send, states, config)")
    for signal_name in ("sigint", "sigterm"):
        handler = getattr(module, f"{signal_name}_handler", None)
        if handler is not None:
            _models.check_signature(handler, 5, f"{signal_name}_handler",
                                    f"{signal_name}_handler(signum, frame, to_send, states, "
                                    "config)")
            definition.signal_handlers[signal_name.upper()] = handler
    main = getattr(module, "main", None)
    if main is not None and not main_mode and callable(main):
        main_takes_states(main)  # a main that cannot be called fails now, not when run
    if addresses is None and addresses_for is not None:
        definition.addresses = dict(addresses_for(definition))
    if main_mode:
        require_main_mode(definition)
    _check_addresses(definition)
    _load_security(definition, file_addresses)
    definition.load_arguments = {"config": config, "extras": extras, "addresses": addresses}
    return definition


def reload_service(definition: ServiceDefinition) -> ServiceDefinition:
    """The definition a restarted service runs: its module imported again — fresh globals,
    as a new process has — and loaded as before (config, extras, addresses; addresses made
    for it at the first load are kept, so peers find it where it was).

    The names a module lists in `persistent_globals` keep the old module's objects: they
    stand in for what a real service keeps in a database. A module with no source file (one
    built in a test) cannot be imported again: it keeps all its globals. A definition not
    made by `load_service` is returned as it is.
    """
    arguments = definition.load_arguments
    if arguments is None:
        return definition
    module = reimport_service(definition.module)
    addresses_for = None
    if arguments["addresses"] is None:
        made = dict(definition.addresses)
        addresses_for = lambda _definition: made  # noqa: E731
    return load_service(module, config=arguments["config"], extras=arguments["extras"],
                        addresses=arguments["addresses"], main_mode=definition.main_mode,
                        addresses_for=addresses_for)


def reimport_service(module: types.ModuleType) -> types.ModuleType:
    """A fresh copy of a service module, from its file, with its `persistent_globals`
    taken from `module`; `module` itself when it has no file to import from."""
    spec = getattr(module, "__spec__", None)
    origin = getattr(spec, "origin", None)
    if spec is None or spec.loader is None or not origin or not os.path.isfile(origin):
        return module
    fresh = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(spec.name)
    sys.modules[spec.name] = fresh  # as an import does (dataclasses look the module up)
    loaded = False
    try:
        spec.loader.exec_module(fresh)
        loaded = True
    except Exception as error:
        raise ModelError(f"{origin}: importing the service again (a restart) failed: "
                         f"{type(error).__name__}: {error}") from error
    finally:
        # A module loaded from its path is the service's own; one imported by name stays
        # what its importers see.
        if not loaded and previous is None:
            sys.modules.pop(spec.name, None)
        elif previous is not None and not (loaded and spec.name.startswith("_sf_service_")):
            sys.modules[spec.name] = previous
    for name in persistent_names(fresh):
        if hasattr(module, name):
            setattr(fresh, name, getattr(module, name))
    return fresh


def persistent_names(module: types.ModuleType) -> tuple[str, ...]:
    """The module's `persistent_globals`: names of globals a restart keeps."""
    names = getattr(module, PERSISTENT_GLOBALS, ())
    if isinstance(names, str) or not isinstance(names, (tuple, list, set, frozenset)) or \
            not all(isinstance(name, str) for name in names):
        raise ModelError(f"{PERSISTENT_GLOBALS}: expected a tuple of global names, "
                         f"got {names!r}")
    return tuple(names)


def require_main_mode(definition: ServiceDefinition) -> None:
    """Main mode needs `main(to_send[, states], config)` and allows no in-states."""
    main = getattr(definition.module, "main", None)
    if main is None:
        raise ModelError(f"{definition.name}: main mode needs a main(to_send, config) function")
    definition.main, definition.main_takes_states = main, main_takes_states(main)
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
        if entry.optional and not _addresses.has_address(
                definition.addresses, entry.section, entry.side, entry.name, entry.key):
            log.warning("%s state %r has no %s address: no snapshots; a late joiner waits "
                        "for the next update", entry.side, entry.name, entry.key)
            continue
        _addresses.endpoints(definition.addresses, entry.section, entry.side, entry.name,
                             entry.key, many=entry.many)
