"""The load balancer in front of a service's pods: routes each attempt to a ready pod."""
from __future__ import annotations

from typing import Callable

from .request import Attempt
from .rng import Draws


class Balancer:
    """`round_robin`, `least_outstanding` or `random` over the ready pods; 503 when none."""

    def __init__(self, policy: str, ready: list, respond: Callable[[Attempt, str | None], None], draws: Draws):
        self.ready = ready  # the service's list of ready pods, kept by the world
        self.respond = respond
        self.draws = draws
        self.next = 0
        self.route = {
            "round_robin": self._round_robin,
            "least_outstanding": self._least_outstanding,
            "random": self._random,
        }[policy]

    def _round_robin(self, att: Attempt) -> None:
        ready = self.ready
        if not ready:
            self.respond(att, "no_ready_pod")
            return
        i = self.next % len(ready)
        self.next = i + 1
        ready[i].accept(att)

    def _least_outstanding(self, att: Attempt) -> None:
        ready = self.ready
        if not ready:
            self.respond(att, "no_ready_pod")
            return
        n = len(ready)
        start = self.next % n  # ties go round robin, so idle pods share the work
        best_i, best = start, ready[start]
        for k in range(1, n):
            i = (start + k) % n
            if ready[i].inflight < best.inflight:
                best_i, best = i, ready[i]
        self.next = best_i + 1
        best.accept(att)

    def _random(self, att: Attempt) -> None:
        ready = self.ready
        if not ready:
            self.respond(att, "no_ready_pod")
            return
        ready[int(self.draws.next() * len(ready))].accept(att)
