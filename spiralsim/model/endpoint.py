"""An endpoint's work: statements, their database time, errors, and slow-query windows.

Each request's own work is drawn when it arrives, from streams named after the
service and endpoint, so two variants of a scenario see the same requests doing
the same work; an incident scales a statement when it *starts executing*.
"""
from __future__ import annotations

import math

from ..scenario import EndpointConfig
from ..scenario.triggers import Incident
from .rng import Draws


class Endpoint:
    """The runtime of one `[services.NAME.endpoints.ENDPOINT]` table."""

    def __init__(self, name: str, config: EndpointConfig, work: Draws, errors: Draws,
                 windows: list[Incident],
                 locks: Draws | None = None, orphans: Draws | None = None, transient: Draws | None = None,
                 roles: Draws | None = None):
        self.name = name
        self.is_query = config.kind == "query"
        self.statements = config.statements
        self.think = config.think
        self.cpu_mean = config.statement_cpu
        self.wait_mean = config.statement_wait
        self.distribution = config.distribution
        self.sigma = config.sigma
        self.error_rate = config.error_rate
        self.transient_rate = config.transient_error_rate
        self._transient = transient
        self.set_role = config.set_role
        self.role_leak_rate = config.role_leak_rate
        self._roles = roles
        self.leak_on_error = config.leak_on_error
        self.orphan_rate = config.orphan_rate
        self.lock_conflict = config.lock_conflict
        self._locks = locks
        self._orphans = orphans
        self.has_fate = self.lock_conflict > 0 or self.orphan_rate > 0
        self._work = work
        self._errors = errors
        self.windows = windows
        # lognormal with the given mean: exp(mu + sigma Z), mu = ln(mean) - sigma^2 / 2
        self._ln_shift = -0.5 * self.sigma * self.sigma

    def slowdown(self, now: float) -> float:
        """The product of the `slow_queries` factors whose window holds `now` (a ramp's as it stands then)."""
        f = 1.0
        for inc in self.windows:
            if inc.start <= now < inc.end:
                f *= inc.factor_at(now)
        return f

    def draw_fate(self) -> tuple[int, bool]:
        """Which statements need an orphan's locked rows (bit mask), and whether this
        transaction will be released without COMMIT."""
        locks = 0
        if self.lock_conflict > 0:
            u = self._locks.next
            for i in range(self.statements):
                if u() < self.lock_conflict:
                    locks |= 1 << i
        orphan = self.orphan_rate > 0 and self._orphans.next() < self.orphan_rate
        return locks, orphan

    def draw_transient(self) -> bool:
        """Whether this attempt meets a transient error (a serialization failure, a deadlock, a reset
        connection): drawn for each attempt apart, unlike `error_rate`, which every attempt repeats."""
        return self.transient_rate > 0 and self._transient.next() < self.transient_rate

    def draw_role_leak(self) -> bool:
        """Whether this attempt's handler skips RESET ROLE before it releases its client."""
        return self.role_leak_rate > 0 and self._roles.next() < self.role_leak_rate

    def draw(self) -> tuple[list[float], int]:
        """A request's work: [cpu, wait] seconds per statement, and a bit mask of failing statements."""
        n = self.statements
        cpu, wait = self.cpu_mean, self.wait_mean
        dist = self.distribution
        work: list[float] = []
        if dist == "deterministic":
            work = [cpu, wait] * n
        elif dist == "exponential":
            nxt = self._work.next
            if n == 1:  # (most endpoints: the same two draws, without a loop)
                work = [cpu * nxt(), wait * nxt()]
            else:
                for _ in range(n):
                    work += (cpu * nxt(), wait * nxt())  # (one call into C a statement, not two appends)
        else:
            nxt = self._work.next
            s, shift = self.sigma, self._ln_shift
            for _ in range(n):
                work += (cpu * math.exp(shift + s * nxt()), wait * math.exp(shift + s * nxt()))
        errors = 0
        if self.error_rate > 0.0:
            u = self._errors.next
            for i in range(n):
                if u() < self.error_rate:
                    errors |= 1 << i
        return work, errors
