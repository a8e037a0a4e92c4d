"""external_target: calls a Python callable as if it were a remote service."""

from __future__ import annotations

from .outbound import OutboundConnection


class ExternalTarget(OutboundConnection):
    def deliver(self, args: dict, workflow_id: str) -> dict:
        self.runtime.emit("out", "request", self.name, workflow_id, args=args)
        try:
            reply = self.spec.creation["target"](**args)
        except Exception as error:  # recorded, so that a replay raises it again
            self.record_error(error, workflow_id)
            raise
        return self.check_reply(reply, workflow_id)
