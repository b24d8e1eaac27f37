"""A serverless service (Lambda, Vercel Functions): the platform, not a balancer, routes.

Each instance serves one request at a time. An attempt goes to the instance that
went idle last (a warm start); with none idle, a new instance starts cold (the
pod's `startup`, then its warm-up) and the attempt waits for it; at
`max_instances` the platform answers 429 (`too_many_instances`). Between
requests an instance is frozen: with `freeze`, its pool's timers do not run, so
the connections it opened stay open until the platform reaps it, `idle_reap`
after its last request. Every instance has its own pool: the fan-out of
instances times their connections is what meets `max_connections`.
"""
from __future__ import annotations

from typing import Callable

from simpy import Environment

from ..metrics import ServiceSeries
from ..scenario import ServerlessConfig
from .pod import GONE, READY, Pod
from .request import Attempt
from .timer import Timer


class Fleet:
    """The instances of one serverless service; `route(attempt)` in place of a balancer."""

    def __init__(self, env: Environment, config: ServerlessConfig, new_pod: Callable[..., Pod],
                 live: Callable[[], int], respond: Callable[[Attempt, str | None], None], series: ServiceSeries):
        """`new_pod(levels)` makes an instance (with a reaped one's per-pod gauges, if any), `live()`
        counts those not gone, `respond` answers an attempt;
        `series` gets the frozen instances and the connections they hold."""
        self.env = env
        self.frozen_level = series.instances_frozen
        self.held_level = series.pool_frozen
        self.held: dict[int, int] = {}  # connections each frozen instance held when it froze, by pod index
        self.max_instances = config.max_instances
        self.idle_reap = config.idle_reap
        self.freeze = config.freeze
        self.new_pod = new_pod
        self.live = live
        self.respond = respond
        self.idle: list[Pod] = []  # warm instances waiting for a request, the last to go idle on top
        self.spare_levels: list = []  # per-pod gauges of reaped instances, for the next cold start

    def adopt(self, pod: Pod) -> None:
        """Make `pod` one of the fleet's instances (before it starts)."""
        pod.on_idle = self._went_idle

    def route(self, att: Attempt) -> None:
        """A warm instance if one is idle; else a cold start, or 429 at the limit."""
        idle = self.idle
        while idle:
            pod = idle.pop()
            if pod.state == READY and not pod.attempts and pod.pending is None:
                self._wake(pod)
                if pod.pool is not None:
                    pod.pool.thaw()
                pod.accept(att)
                return
        if self.live() >= self.max_instances:
            self.respond(att, "too_many_instances")
            return
        pod = self.new_pod(self.spare_levels.pop() if self.spare_levels else None)
        self.adopt(pod)
        pod.pending = att
        pod.create()

    def _went_idle(self, pod: Pod) -> None:
        now = self.env.now
        pod.idle_since = now
        held = pod.pool.total if pod.pool is not None else 0
        self.held[pod.index] = held
        self.frozen_level.add(now, 1.0)
        self.held_level.add(now, held)
        if self.freeze and pod.pool is not None:
            pod.pool.freeze()
        self.idle.append(pod)
        Timer(self.env, self.idle_reap, self._reap, (pod, now))

    def _wake(self, pod: Pod) -> None:
        """The instance is no longer idle (a request, or the reaper)."""
        pod.idle_since = -1.0
        now = self.env.now
        self.frozen_level.add(now, -1.0)
        self.held_level.add(now, -self.held.pop(pod.index))

    def _reap(self, timer: Timer) -> None:
        pod, since = timer.arg
        if pod.idle_since == since and pod.state == READY and not pod.attempts:
            self.idle.remove(pod)
            self._wake(pod)
            pod.terminate()
            if pod.state == GONE:  # its gauges are back at 0: the next cold start records on them
                self.spare_levels.append((pod.waiting_level, pod.in_use_level))
