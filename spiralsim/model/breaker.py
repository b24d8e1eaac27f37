"""A client's circuit breaker, as Hystrix has it (its defaults are the scenario's).

closed: every answered attempt is counted in a rolling window of `window`
seconds (ten slices); once the window holds at least `min_requests` attempts and
the share that failed reaches `error_rate`, it opens. open: every attempt is
refused at once (`circuit_open`) for `open_s`; then half-open: one trial attempt
goes through, the others are refused; the trial's success closes it (the window
starts empty), its failure opens it again. What the client refuses itself
(circuit_open, throttled) and a statement's own error (bad input: the backend is
fine) are not counted.
"""
from __future__ import annotations

from typing import Callable

from ..metrics import Level

CLOSED, HALF_OPEN, OPEN = 0, 1, 2
STATE_NAMES = ("closed", "half-open", "open")
SLICES = 10
NOT_COUNTED = frozenset(("circuit_open", "throttled", "statement_error"))


class Breaker:
    """`allow(now)` before an attempt; `record(now, error, trial)` when one is answered."""

    def __init__(self, error_rate: float, window: float, min_requests: int, open_s: float, level: Level,
                 on_change: Callable[[float, int, str], None]):
        """`level` is the service's breaker gauge (0 closed, 1 half-open, 2 open);
        `on_change(now, state, why)` logs a state change."""
        self.error_rate = error_rate
        self.slice_s = window / SLICES
        self.min_requests = min_requests
        self.open_s = open_s
        self.level = level
        self.on_change = on_change
        self.state = CLOSED
        self.opened_at = 0.0
        self.trial_out = False
        self.slice_no = [-1] * SLICES   # which slice of time each ring slot holds
        self.total = [0] * SLICES
        self.errors = [0] * SLICES

    def allow(self, now: float) -> int:
        """0: refuse; 1: go (closed); 2: go as the half-open trial."""
        if self.state == CLOSED:
            return 1
        if self.state == OPEN:
            if now - self.opened_at < self.open_s:
                return 0
            self._set(now, HALF_OPEN, f"{self.open_s:g} s open: one trial attempt goes through")
        if self.trial_out:
            return 0
        self.trial_out = True
        return 2

    def record(self, now: float, error: str | None, trial: bool) -> None:
        """An attempt this breaker let through was answered (`trial`: it was the half-open one)."""
        if error in NOT_COUNTED:
            return
        if trial:
            self.trial_out = False
            if self.state != HALF_OPEN:
                return
            if error is None:
                self._reset()
                self._set(now, CLOSED, "the trial attempt succeeded")
            else:
                self._open(now, f"the trial attempt failed ({error})")
            return
        if self.state != CLOSED:
            return
        k = int(now / self.slice_s)
        i = k % SLICES
        if self.slice_no[i] != k:
            self.slice_no[i] = k
            self.total[i] = 0
            self.errors[i] = 0
        self.total[i] += 1
        if error is not None:
            self.errors[i] += 1
            total = errors = 0
            for j in range(SLICES):
                if k - self.slice_no[j] < SLICES:
                    total += self.total[j]
                    errors += self.errors[j]
            if total >= self.min_requests and errors >= self.error_rate * total:
                self._open(now, f"{errors} of the last {total} attempts failed"
                                f" ({100 * errors / total:.0f} % >= {100 * self.error_rate:g} %)")

    def _open(self, now: float, why: str) -> None:
        self.opened_at = now
        self._set(now, OPEN, why)

    def _reset(self) -> None:
        self.slice_no = [-1] * SLICES
        self.total = [0] * SLICES
        self.errors = [0] * SLICES

    def _set(self, now: float, state: int, why: str) -> None:
        self.state = state
        self.level.set(now, float(state))
        self.on_change(now, state, why)
