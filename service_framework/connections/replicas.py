"""Which replica of a replyer gets the next attempt of a request.

An out requester's address may list several endpoints: replicas of one replyer. Each
gets a DEALER socket of its own, so the requester knows which one failed to answer.
Attempts go round-robin over the replicas that are not suspect; a replica that let an
attempt time out is suspect for a while (`timeout_s`, doubling with each failure in a
row up to `MAX_SUSPECT_S`) and then gets traffic again: the next request it is given is
its probe, and one answer clears it. When every replica is suspect, they are tried
anyway (the least recently failed first): a request is never refused for want of a
healthy replica.

Pure bookkeeping, with the time passed in: the same calls give the same choices on the
memory bus and over ZeroMQ.
"""

from __future__ import annotations

from typing import Any

# The longest a failed replica is left alone before it is probed again (seconds): a
# replica that comes back gets traffic again at most this long after.
MAX_SUSPECT_S = 10.0


class Replica:
    __slots__ = ("endpoint", "socket", "failures", "suspect_until", "answered")

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.socket: Any = None
        self.failures = 0  # timed-out attempts in a row
        self.suspect_until = float("-inf")
        self.answered = 0  # requests it answered (for logs and tests)

    def __repr__(self) -> str:
        return f"Replica({self.endpoint!r}, failures={self.failures})"


class ReplicaSet:
    """The replicas of one requester, in the order of its addresses."""

    def __init__(self, endpoints: list[str], timeout_s: float) -> None:
        self.replicas = [Replica(endpoint) for endpoint in endpoints]
        self.timeout_s = timeout_s
        self._next = 0

    def __len__(self) -> int:
        return len(self.replicas)

    def order(self, now: float) -> list[Replica]:
        """The replicas in the order this request tries them: those not suspect first,
        round-robin from the one after the last request's first choice, then the suspect
        ones (soonest due first).

        The turn passes over suspect replicas: a suspect one's share goes to every healthy
        one alike, not all to the replica after it.
        """
        replicas = self.replicas
        count = len(replicas)
        if count == 1:
            return list(replicas)
        turn = [replicas[(self._next + step) % count] for step in range(count)]
        healthy = [replica for replica in turn if replica.suspect_until <= now]
        suspect = sorted((replica for replica in turn if replica.suspect_until > now),
                         key=lambda replica: replica.suspect_until)
        chosen = healthy + suspect
        self._next = replicas.index(chosen[0]) + 1
        return chosen

    def failed(self, replica: Replica, now: float) -> float:
        """An attempt on `replica` timed out: it is suspect for the returned seconds."""
        replica.failures += 1
        # the exponent capped: a replica dead for good fails thousands of times
        pause = min(self.timeout_s * 2 ** min(replica.failures - 1, 32), MAX_SUSPECT_S)
        replica.suspect_until = now + pause
        return pause

    @staticmethod
    def answered(replica: Replica) -> None:
        replica.failures = 0
        replica.suspect_until = float("-inf")
        replica.answered += 1
