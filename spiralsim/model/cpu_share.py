"""The database's cores, shared equally among the statements in their CPU part
(processor sharing): more concurrent statements than cores slows every one of them,
and with contention (`contention.py`) the cores deliver less in all past their count."""
from __future__ import annotations

import math
from heapq import heappop, heappush
from typing import Any, Callable

from simpy import Environment

from .contention import usl_denominator
from .timer import Timer


class CpuShare:
    """Processor sharing over `cores`: n jobs each progress at min(1, cores/n), or with
    contention (`sigma`, `kappa` of the USL) at `contention.share(n, ...)` past the cores.

    Virtual time V advances at that rate; a job finishes when V reaches its
    finish tag (V at arrival + work). One pending Timer, replaced when the
    next finish moves (a stale one sees a changed generation and does nothing).
    """

    def __init__(self, env: Environment, cores: int, on_busy: Callable[[float], None],
                 on_done: Callable[[Any], None], sigma: float = 0.0, kappa: float = 0.0):
        self.env = env
        self.sigma = sigma
        self.kappa = kappa
        self.contended = sigma > 0 or kappa > 0
        self.full = cores * usl_denominator(cores, sigma, kappa)  # capacity(n) = full / D(n) past the cores
        self.on_done = on_done
        self.cores = cores
        self.n = 0
        self.v = 0.0
        self.t_last = 0.0
        self.heap: list = []
        self.seq = 0
        self.gen = 0
        self.next_tag = float("inf")
        self.on_busy = on_busy

    def _advance(self) -> None:
        now = self.env.now
        n = self.n
        if n and now > self.t_last:
            self.v += (now - self.t_last) * (1.0 if n <= self.cores else self.rate(n))
        self.t_last = now

    def _reschedule(self) -> None:
        heap = self.heap
        while heap and heap[0][2].dead:
            heappop(heap)
        self.gen += 1
        if not heap:
            self.next_tag = float("inf")
            return
        tag = heap[0][0]
        n = self.n
        rate = 1.0 if n <= self.cores else self.rate(n)
        self.next_tag = tag
        Timer(self.env, max(tag - self.v, 0.0) / rate, self._on_finish, self.gen)

    def rate(self, n: int) -> float:
        """Each job's speed with `n` jobs on the CPU: `contention.share`, inlined for the hot path."""
        if n <= self.cores:
            return 1.0
        if self.contended:
            return self.full / (n * (1.0 + self.sigma * (n - 1) + self.kappa * n * (n - 1)))
        return self.cores / n

    def add(self, work: float, job: Any) -> None:
        """Start `work` CPU-seconds for `job`; `on_done(job)` runs when it has been served."""
        self._advance()
        self.n += 1
        tag = self.v + work
        self.seq += 1
        heappush(self.heap, (tag, self.seq, job))
        self.on_busy(min(self.n, self.cores) / self.cores)
        if self.n > self.cores or tag < self.next_tag:
            self._reschedule()

    def cancel(self, job: Any) -> None:
        """Withdraw a running job (statement_timeout); its heap entry is skipped later."""
        self._advance()
        job.dead = True
        self.n -= 1
        self.on_busy(min(self.n, self.cores) / self.cores)
        self._reschedule()

    def _on_finish(self, timer: Timer) -> None:
        if timer.arg != self.gen:
            return
        self._advance()
        heap = self.heap
        # Work left below a few ulps of the clock cannot move it: it is done now
        # (else a delay that rounds to zero would fire again and again at this instant).
        limit = self.v + 1e-12 + 4 * (math.ulp(self.env.now) + math.ulp(self.v))
        finished = []
        while heap and (heap[0][2].dead or heap[0][0] <= limit):
            _, _, job = heappop(heap)
            if not job.dead:
                job.dead = True
                self.n -= 1
                finished.append(job)
        self.on_busy(min(self.n, self.cores) / self.cores)
        self._reschedule()
        on_done = self.on_done
        for job in finished:
            on_done(job)
