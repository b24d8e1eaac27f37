"""Node's single event loop in one pod: request CPU, query results, releases, the pool's
hand-overs and every timer callback run on it, one after another.

Tasks are served first come first served and their costs are known when they arrive,
so the loop is a clock (`free_at`, when the work handed to it so far is done) instead
of a queue: a task arriving at `now` starts at max(now, free_at). A task of no cost
on an idle loop runs at once, in the caller's stack (no event). Timers that come due
while the loop is busy run when it gets to them (`LoopTimer`): a busy loop fires
acquire timeouts late and releases connections late, as in Node.
"""
from __future__ import annotations

from typing import Any, Callable

from simpy import Environment

from ..metrics import ServiceSeries, add_span
from .timer import Timer

#: How often each pod's event-loop lag is sampled (prom-client's event-loop monitor
#: samples at 10 ms; a tenth of a second keeps a long run cheap and a bucket's mean steady).
LAG_SAMPLE_S = 0.1


class LoopTimer(Timer):
    """A callback the loop has queued behind its backlog: when it fires, it runs (it is not deferred again)."""

    __slots__ = ()


class EventLoop:
    """One pod's event loop: `later(cost)` books a task and says how long until it is done."""

    __slots__ = ("env", "free_at", "assigned", "cpu_busy", "inv_bucket", "bucket", "busy")

    def __init__(self, env: Environment, cpu_busy: Any, inv_bucket: float, bucket: float, busy: dict | None = None):
        """`cpu_busy`: the service's per-bucket seconds of event-loop CPU (the pod CPU signal); `busy`: the
        service's loops that may be behind (joined when work reaches an idle loop; the sampler reads them;
        a dict, not a set: its order, and so the sum of the lags, is the same in every run)."""
        self.env = env
        self.busy = busy if busy is not None else {}
        self.free_at = 0.0
        self.assigned = 0.0  # seconds of CPU handed to this loop, ever
        self.cpu_busy = cpu_busy
        self.inv_bucket = inv_bucket
        self.bucket = bucket

    def later(self, cost: float) -> float:
        """Book a task of `cost` CPU-seconds arriving now; the seconds until it has run (0: run it now).

        `later(0)` on an idle loop (`free_at <= now`) books nothing and says 0: the request path
        tests `cost > 0 or loop.free_at > now` and skips the call otherwise."""
        now = self.env._now
        free_at = self.free_at
        start = free_at if free_at > now else now
        if cost > 0:
            if start == now:
                self.busy[self] = None
            end = start + cost
            self.free_at = end
            self.assigned += cost
            add_span(self.cpu_busy, self.inv_bucket, self.bucket, start, end)
            return end - now
        return start - now

    def lag(self, now: float) -> float:
        """How late a timer due now would run: the backlog of work booked before it (Node's event-loop delay)."""
        backlog = self.free_at - now
        return backlog if backlog > 0 else 0.0

    def busy_until(self, now: float) -> float:
        """Seconds of CPU used up to `now` (the backlog is contiguous, so it is what is left of it)."""
        backlog = self.free_at - now
        return self.assigned - (backlog if backlog > 0 else 0.0)

    def defer(self, fn: Callable[[Any], None], timer: Timer) -> bool:
        """For a timer callback: True when the loop is busy and `fn` has been queued behind its
        backlog (call it again with the same argument then); False when it may run now."""
        if timer.__class__ is LoopTimer:
            return False
        delay = self.free_at - self.env._now
        if delay <= 0:
            return False
        LoopTimer(self.env, delay, fn, timer.arg)
        return True

    def restart(self) -> None:
        """The process died: the work booked but not yet run is gone with it."""
        now = self.env._now
        if self.free_at > now:
            self.assigned -= self.free_at - now
            add_span(self.cpu_busy, self.inv_bucket, self.bucket, now, self.free_at, -1.0)
            self.free_at = now


class LagSampler:
    """Samples every running pod's event-loop lag each `LAG_SAMPLE_S`: the service's per-bucket
    sum, count and maximum (the `event_loop_lag_ms` and `event_loop_lag_max_ms` columns). Only the
    loops in `busy` can be behind; every other running pod's sample is 0, so it is only counted
    (a fleet of hundreds of idle serverless instances costs nothing)."""

    def __init__(self, env: Environment, busy: dict, running: Callable[[], float], series: ServiceSeries,
                 inv_bucket: float):
        """`busy`: the service's loops that may be behind; `running()`: how many pods' processes run now."""
        self.env = env
        self.busy = busy
        self.running = running
        self.series = series
        self.inv_bucket = inv_bucket
        Timer(env, LAG_SAMPLE_S, self._sample)

    def _sample(self, timer: Timer) -> None:
        now = self.env._now
        series = self.series
        b = int(now * self.inv_bucket)
        total = 0.0
        worst = series.loop_lag_max[b]
        caught_up = []
        for loop in self.busy:
            lag = loop.free_at - now
            if lag <= 0:
                caught_up.append(loop)
                continue
            total += lag
            if lag > worst:
                worst = lag
        for loop in caught_up:
            del self.busy[loop]
        series.loop_lag_sum[b] += total
        series.loop_lag_samples[b] += self.running()
        series.loop_lag_max[b] = worst
        Timer(self.env, LAG_SAMPLE_S, self._sample)
