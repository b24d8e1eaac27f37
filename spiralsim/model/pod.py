"""A pod: one single-threaded event loop (one CPU) in front of its own pool.

Each attempt costs `cpu_per_request` of the event loop, served first come first
served; as the server is FCFS with known costs, an attempt's CPU slot is
computed on arrival (no queue object needed). Optional load shedding answers
503 above `max_inflight` attempts in flight.
"""
from __future__ import annotations

from typing import Callable

from simpy import Environment

from ..metrics import ServiceSeries, add_span
from .client import Attempt
from .handler import Handler
from .pool import Pool
from .timer import Timer


class Pod:
    """One replica of a service: event-loop CPU, in-flight count, a pg.Pool."""

    def __init__(self, env: Environment, index: int, config, pool: Pool, handler: Handler,
                 series: ServiceSeries, respond: Callable[[Attempt, str | None], None], recorder):
        self.env = env
        self.index = index
        self.pool = pool
        self.handler = handler
        self.series = series
        self.respond = respond
        self.cpu_per_request = config.cpu_per_request
        self.max_inflight = config.max_inflight
        self.inflight = 0
        self.cpu_free_at = 0.0
        self.inv_bucket = recorder.inv_bucket
        self.bucket = recorder.bucket

    def accept(self, att: Attempt) -> None:
        """The balancer hands this pod an attempt."""
        if self.max_inflight and self.inflight >= self.max_inflight:
            self.respond(att, "shed")
            return
        now = self.env.now
        self.inflight += 1
        self.series.inflight.add(now, 1.0)
        att.pod = self
        cost = self.cpu_per_request
        if cost > 0:
            start = self.cpu_free_at if self.cpu_free_at > now else now
            end = start + cost
            self.cpu_free_at = end
            add_span(self.series.cpu_busy, self.inv_bucket, self.bucket, start, end)
            Timer(self.env, end - now, self._cpu_done, att)
        else:
            self.handler.start(att)

    def _cpu_done(self, timer: Timer) -> None:
        self.handler.start(timer.arg)

    def finish(self, att: Attempt, error: str | None) -> None:
        """The handler is done with an attempt; answer the balancer."""
        self.inflight -= 1
        self.series.inflight.add(self.env.now, -1.0)
        self.respond(att, error)
