"""One user request and its attempts: the only per-request objects, dropped when the request ends."""
from __future__ import annotations

from .endpoint import Endpoint


class Request:
    """One user request: its own work, drawn when it arrives, and its attempts."""

    __slots__ = ("t0", "endpoint", "work", "errors", "locks", "orphan", "attempts", "backoff_prev", "done")

    def __init__(self, t0: float, endpoint: Endpoint, work: list[float], errors: int, locks: int = 0,
                 orphan: bool = False):
        self.t0 = t0
        self.endpoint = endpoint
        self.work = work
        self.errors = errors
        self.locks = locks
        self.orphan = orphan
        self.attempts = 0
        self.backoff_prev = 0.0
        self.done = False


class Attempt:
    """One try of a request through the balancer into a pod (`gen`: the pod's
    container generation when it got there; `pool`: the pool it asked)."""

    __slots__ = ("req", "seq", "pod", "gen", "pool", "conn", "stmt", "answered", "foreign", "risk_tx", "transient",
                 "t0", "trial", "inflight0",
                 "role", "error", "qdue", "timed_out")

    def __init__(self, req: Request, seq: int):
        self.req = req
        self.seq = seq
        self.conn = None
        self.answered = False
        self.foreign = False   # its transaction is someone else's open one
        self.risk_tx = None    # an open transaction holding this attempt's uncommitted writes
        # Set when it reaches a pod (`Pod.accept`): `pod` and `gen`; when it reaches the handler
        # (`Handler.start`): `pool` and `stmt` (its next statement); nothing reads them before.
        # Set only where they are read, to keep an attempt cheap: `transient` (its last statement fails
        # with a transient error) and `role` (1: it SET ROLE; 2: and leaves it; -1: ran under another's)
        # by the handler; `trial` (the half-open breaker's one trial) with a breaker; `t0` (when it
        # reached its pod) and `inflight0` (in flight there then, itself included) with an adaptive limit;
        # `error` (its statement's outcome, while the pod's event loop has yet to handle the result);
        # `qdue` (when its statement's query_timeout is due) and `timed_out` (that timer won) with a query_timeout.
