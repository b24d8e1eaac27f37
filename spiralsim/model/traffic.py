"""Open-loop arrivals: a non-homogeneous Poisson process with a piecewise-linear rate.

Arrival times come from inverting the integrated rate with unit exponentials
(exact, no thinning), so a variant that changes one phase keeps every other
arrival where it was.
"""
from __future__ import annotations

import math

from simpy import Environment

from ..scenario import PhaseConfig
from .client import Client
from .endpoint import Endpoint
from .request import Request
from .rng import Draws
from .timer import Timer, schedule


def rate_segments(base: float, phases: list[PhaseConfig], duration: float) -> list[tuple[float, float, float, float]]:
    """[(t0, t1, rate at t0, rate at t1)] covering [0, duration]: base rate between phases,
    a phase's rate inside it, or a linear ramp from the rate before when `ramp`."""
    segs: list[tuple[float, float, float, float]] = []
    t, rate_before = 0.0, base
    for p in sorted(phases, key=lambda p: p.start):
        if p.start >= duration:
            break
        if p.start > t:
            segs.append((t, p.start, base, base))
            rate_before = base
        end = min(p.end, duration)
        r0 = rate_before if p.ramp else p.rate
        r1 = p.rate if not p.ramp else rate_before + (p.rate - rate_before) * (end - p.start) / (p.end - p.start)
        segs.append((p.start, end, r0, r1))
        t, rate_before = end, p.rate
    if t < duration:
        segs.append((t, duration, base, base))
    return segs


class RateCurve:
    """Where the next arrival falls, given the time now and a unit exponential."""

    def __init__(self, segments: list[tuple[float, float, float, float]]):
        self.segments = segments
        # Each segment with its slope (rate per second, per second), worked out once rather than at every arrival.
        self.sloped = [(t0, t1, r0, r1, (r1 - r0) / (t1 - t0) if t1 > t0 else 0.0) for t0, t1, r0, r1 in segments]
        self.n = len(segments)
        self.index = 0

    def next_arrival(self, t: float, e: float) -> float:
        """The time at which the integrated rate from `t` reaches `e`; inf past the end."""
        segs = self.sloped
        i = self.index
        while i < self.n:
            t0, t1, r0, r1, k = segs[i]
            if t < t1:
                a = t if t > t0 else t0
                if r0 == r1:  # a constant rate: the general case's figures, to the bit (k is 0.0, so ra is r0;
                    area = r0 * (t1 - a)  # 0.5 * (r0 + r0) is r0; sqrt(r0 * r0) is r0, correctly rounded,
                    if e <= area and r0 > 0.0:  # so 2e / (r0 + r0) is e / r0)
                        self.index = i
                        return a + e / r0
                    e -= area
                    i += 1
                    continue
                ra = r0 + k * (a - t0)
                area = 0.5 * (ra + r1) * (t1 - a)
                if e <= area and (ra > 0.0 or k > 0.0):
                    if k == 0.0:  # a segment of no length: as below, with sqrt(ra * ra) = ra
                        d = e / ra
                    else:
                        disc = ra * ra + 2.0 * k * e
                        d = 2.0 * e / (ra + math.sqrt(disc if disc > 0 else 0.0))
                    self.index = i
                    return a + d
                e -= area
            i += 1
        self.index = i
        return math.inf


class Evenly:
    """Unit "exponentials" that are all 1: arrivals evenly spaced in integrated rate."""

    @staticmethod
    def next() -> float:
        return 1.0


class Traffic:
    """One service's user requests, handed to its client as they arrive.

    `poisson` arrivals invert the integrated rate with Exp(1) gaps;
    `deterministic` ones with gaps of exactly 1 (a D/x/c queue's clockwork).
    """

    def __init__(self, env: Environment, curve: RateCurve, gaps: Draws | Evenly, mix: Draws,
                 endpoints: list[Endpoint], weights: list[float], client: Client):
        self.env = env
        self.curve = curve
        self.gaps = gaps
        self.mix = mix
        self.endpoints = endpoints
        total = sum(weights)
        acc, self.cumulative = 0.0, []
        for w in weights:
            acc += w / total
            self.cumulative.append(acc)
        self.client = client
        self.arrive_callbacks = (self._arrive,)  # the next arrival's, made once (`schedule`)

    def start(self) -> None:
        """Schedule the first arrival."""
        self._schedule(0.0)

    def _schedule(self, now: float) -> None:
        t = self.curve.next_arrival(now, self.gaps.next())
        if t != math.inf:
            Timer(self.env, t - now, self._arrive)

    def _arrive(self, timer: Timer) -> None:
        """An arrival; `timer`, popped from the heap, is scheduled again for the next one."""
        now = self.env._now
        eps = self.endpoints
        if len(eps) == 1:
            ep = eps[0]
        else:
            u = self.mix.next()
            ep = eps[-1]
            for candidate, c in zip(eps, self.cumulative):
                if u < c:
                    ep = candidate
                    break
        work, errors = ep.draw()
        if ep.has_fate:
            locks, orphan = ep.draw_fate()
            self.client.request(Request(now, ep, work, errors, locks, orphan))
        else:
            self.client.request(Request(now, ep, work, errors))
        t = self.curve.next_arrival(now, self.gaps.next())  # `_schedule(now)`, inlined: once per request
        if t != math.inf:
            schedule(self.env, t - now, self.arrive_callbacks, timer)
