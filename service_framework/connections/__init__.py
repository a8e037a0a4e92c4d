"""One module per connection type; `build_connection` picks the class for a spec."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..models import ConnectionSpec
from .external_target import ExternalTarget
from .publisher import Publisher
from .replyer import Replyer
from .requester import Requester
from .subscriber import Subscriber

if TYPE_CHECKING:
    from ..runtime import Runtime

CONNECTION_CLASSES = {
    "replyer": Replyer,
    "requester": Requester,
    "publisher": Publisher,
    "subscriber": Subscriber,
    "external_target": ExternalTarget,
}


def build_connection(spec: ConnectionSpec, runtime: "Runtime"):
    return CONNECTION_CLASSES[spec.type](spec, runtime)
