"""A pod's adaptive concurrency limit: Netflix concurrency-limits' AIMDLimit.

An attempt arriving while the pod has `limit` in flight is refused at once
(503, `concurrency_limited`). Each attempt that ends is a sample: a drop (it
failed for want of capacity: a timeout, a refused or dropped connection) or one
slower than `aimd_timeout` multiplies the limit by `aimd_backoff_ratio`; else,
if the pod was at least half busy when it arrived (inflight x 2 >= limit), the
limit grows by one; always within [aimd_min, aimd_max], whole numbers as in the
library. A new process (start, restart) starts from `aimd_initial`.
"""
from __future__ import annotations

from ..metrics import Level
from ..scenario import PodConfig

#: Errors that say nothing about the pod's capacity (the request's own fault).
NOT_A_DROP = frozenset((None, "statement_error", "transient_error"))


class AimdLimit:
    """One pod's limit; the service's gauges hold the sum of the limits and how many pods have one."""

    def __init__(self, config: PodConfig, limit_level: Level, pods_level: Level):
        self.initial = config.aimd_initial
        self.min = config.aimd_min
        self.max = config.aimd_max
        self.ratio = config.aimd_backoff_ratio
        self.timeout = config.aimd_timeout
        self.limit_level = limit_level
        self.pods_level = pods_level
        self.limit = self.initial
        self.on = False

    def start(self, now: float) -> None:
        """A new process: the limit starts at `aimd_initial`."""
        self.stop(now)
        self.limit = self.initial
        self.on = True
        self.limit_level.add(now, self.limit)
        self.pods_level.add(now, 1.0)

    def stop(self, now: float) -> None:
        """The process ended."""
        if self.on:
            self.on = False
            self.limit_level.add(now, -self.limit)
            self.pods_level.add(now, -1.0)

    def sample(self, now: float, rtt: float, inflight: int, error: str | None) -> None:
        """An attempt ended after `rtt` seconds; `inflight` were in flight when it arrived (itself included)."""
        old = self.limit
        if error not in NOT_A_DROP or rtt > self.timeout:
            new = int(old * self.ratio)
        elif inflight * 2 >= old:
            new = old + 1
        else:
            return
        new = self.max if new > self.max else (self.min if new < self.min else new)
        if new != old:
            self.limit = new
            if self.on:
                self.limit_level.add(now, new - old)
