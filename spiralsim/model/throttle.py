"""A client's adaptive throttling, the SRE book's: reject locally, before trying, with
probability max(0, (requests - K x accepts) / (requests + 1)) over the last `window`.

`requests` counts every attempt the client made (those it rejected included),
`accepts` those the backend accepted: it answered them with a success or a
statement's own error (it did the work). Timeouts, 5xx and refused connects are
not accepts, so when the backend sheds or times out, the client sheds first.
"""
from __future__ import annotations

from .rng import Draws

SLICES = 20


class Throttle:
    """`reject(now)` before an attempt (True: refuse it); `accepted(now)` when the backend accepted one."""

    def __init__(self, k: float, window: float, draws: Draws):
        self.k = k
        self.slice_s = window / SLICES
        self.draws = draws
        self.slice_no = [-1] * SLICES
        self.requests = [0] * SLICES
        self.accepts = [0] * SLICES
        self.sum_requests = 0
        self.sum_accepts = 0
        self.current = -1

    def _roll(self, now: float) -> int:
        """Move the window to `now`: drop slices older than it."""
        k = int(now / self.slice_s)
        if k != self.current:
            for j in range(SLICES):
                if self.slice_no[j] != -1 and k - self.slice_no[j] >= SLICES:
                    self.sum_requests -= self.requests[j]
                    self.sum_accepts -= self.accepts[j]
                    self.requests[j] = self.accepts[j] = 0
                    self.slice_no[j] = -1
            i = k % SLICES
            if self.slice_no[i] != k:
                self.sum_requests -= self.requests[i]
                self.sum_accepts -= self.accepts[i]
                self.requests[i] = self.accepts[i] = 0
                self.slice_no[i] = k
            self.current = k
        return k % SLICES

    def probability(self, now: float) -> float:
        """The chance the next attempt is rejected locally."""
        self._roll(now)
        p = (self.sum_requests - self.k * self.sum_accepts) / (self.sum_requests + 1)
        return p if p > 0 else 0.0

    def reject(self, now: float) -> bool:
        """Count a request; True when it is to be rejected locally."""
        p = self.probability(now)
        i = self._roll(now)
        self.requests[i] += 1
        self.sum_requests += 1
        return p > 0 and self.draws.next() < p

    def accepted(self, now: float) -> None:
        """The backend accepted an attempt."""
        i = self._roll(now)
        self.accepts[i] += 1
        self.sum_accepts += 1
