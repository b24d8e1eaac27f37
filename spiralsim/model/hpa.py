"""The Kubernetes HorizontalPodAutoscaler decision, one sync period at a time.

Pure logic (no SimPy, no I/O): the simulator reads the signal over the window,
builds an `Observation` and calls `Hpa.decide(now, obs)` every `period`; the
`Decision` says what to set the deployment to and why.

The algorithm is the one of the Kubernetes docs and controller (facts.md §4):

- ratio = value / target; within the tolerance (|ratio - 1| <= tolerance) nothing
  changes; otherwise the recommendation is ceil(N x ratio), with N = current
  for a service-wide value (latency) and N = the pods the mean was taken over
  for a per-pod mean (cpu, pool_waiting, inflight);
- cpu only: when scaling up, the not-ready pods are counted at 0 %; if that
  brings the ratio back inside the tolerance (or reverses it) nothing changes;
- a recommendation never goes against the signal (ratio > 1 never scales
  down, ratio < 1 never scales up: the controller's own guard);
- clamp to [min_replicas, max_replicas];
- scale up by at most max(+100 %, +4 pods) per 15 s (the default scaleUp
  policies, selectPolicy Max, measured from the replica count at the start of
  the 15 s, as the controller does); no scale-up stabilization;
- scale down only to the highest recommendation of the last
  `scale_down_stabilization` seconds (this one included). The default
  scale-down policy (100 % per 15 s) never binds, so it is not modelled;
- a replica count outside [min, max] (moved by something else) is brought
  straight back to the bound, before any metric, as the controller does.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from ..scenario import AutoscalerConfig
from ..vocabulary import SIGNALS

EPS = 1e-9
SCALE_UP_POLICY_PERIOD = 15.0  # s: the periodSeconds of both default scaleUp policies
SCALE_UP_PERCENT = 100         # Percent policy: +100 % of the replicas at the start of the period
SCALE_UP_PODS = 4              # Pods policy: +4 pods


@dataclass(frozen=True)
class Observation:
    current: int          # the deployment's replica count now (spec.replicas)
    value: float | None   # the signal over the window: cpu mean utilisation (0..1) over READY pods;
                          # latency_p99/latency_mean seconds (service-wide); pool_waiting/inflight the
                          # mean per ready pod; None when there is no data
    ready: int            # ready pods (those with metrics)
    not_ready: int        # pods counted in current but not ready (starting, warming, crash-looping)


@dataclass(frozen=True)
class Decision:
    time: float
    current: int
    desired: int          # what the deployment is set to (== current when nothing changes)
    value: float | None
    ratio: float | None   # value / target as used (after the not-ready correction)
    recommendation: int   # the raw recommendation clamped to [min, max], before rate limit and stabilization
    reason: str


def _ceil(x: float) -> int:
    """ceil, forgiving float noise: 3 x 1.2 = 3.5999999999999996 -> 4, 5.000000000000001 -> 5."""
    return math.ceil(x - EPS)


class Hpa:
    """One HPA: remembers its recent recommendations and scale-ups between calls."""

    def __init__(self, config: AutoscalerConfig):
        self.config = config
        self.signal: str = config.signal
        self.latency: bool = SIGNALS[config.signal].latency    # service-wide: N is the current count
        self.resource: bool = SIGNALS[config.signal].resource  # not-ready pods count at 0 % on a scale-up
        self.target: float = float(config.target)
        self.min: int = int(config.min_replicas)
        self.max: int = int(config.max_replicas)
        self.tolerance: float = float(config.tolerance)
        self.window: float = float(config.scale_down_stabilization)
        self.recommendations: deque[tuple[float, int]] = deque()  # (time, clamped recommendation)
        self.scale_ups: deque[tuple[float, int]] = deque()        # (time, replicas added)

    # ---- the decision ----------------------------------------------------------------------------

    def decide(self, now: float, obs: Observation) -> Decision:
        current = obs.current
        self._forget(now)

        # Replicas outside [min, max]: straight back to the bound, before any metric.
        if current > self.max or current < self.min:
            bound = self.max if current > self.max else self.min
            ratio = None if obs.value is None else obs.value / self.target
            which = "max_replicas" if current > self.max else "min_replicas"
            side = "above" if current > self.max else "below"
            return self._set(now, current, bound, obs.value, ratio, bound,
                             f"limited by {which} ({current} replicas {side} it)")

        rec, ratio, reason = self._recommend(obs)
        clamped = min(max(rec, self.min), self.max)
        if clamped != rec:
            which = "max_replicas" if rec > self.max else "min_replicas"
            reason = f"limited by {which} (wanted {rec})"
        self.recommendations.append((now, clamped))

        if clamped > current:
            start = current - sum(added for _, added in self.scale_ups)
            limit = max(start + start * SCALE_UP_PERCENT // 100, start + SCALE_UP_PODS)
            desired = clamped
            if desired > limit:
                desired = limit
                reason = (f"limited by the scale-up rate (max(+{SCALE_UP_PERCENT} %, +{SCALE_UP_PODS}) per "
                          f"{SCALE_UP_POLICY_PERIOD:g} s from {start}: {limit}; wanted {clamped})")
        elif clamped < current:
            highest = max(count for _, count in self.recommendations)
            desired = min(current, highest)
            if desired > clamped:
                reason = (f"held by scale-down stabilization (highest recommendation in "
                          f"{self.window:g} s: {highest}; wanted {clamped})")
        else:
            desired = current
        return self._set(now, current, desired, obs.value, ratio, clamped, reason)

    def _recommend(self, obs: Observation) -> tuple[int, float | None, str]:
        """The metric's recommendation (not yet clamped), the ratio used and why."""
        current = obs.current
        if obs.value is None:
            return current, None, "no data"
        ratio = obs.value / self.target
        if self.latency:
            pods = current                                   # a service-wide value: scale the whole deployment
        else:
            pods = obs.ready                                 # a mean over the ready pods
        if self.resource and ratio > 1.0 and obs.not_ready > 0:
            # Scaling up with not-ready pods: count them at 0 % and look again.
            pods = obs.ready + obs.not_ready
            corrected = obs.value * obs.ready / pods
            raw, ratio = ratio, corrected / self.target
            if ratio <= 1.0 + self.tolerance + EPS:
                return current, ratio, (f"not-ready pods at 0 % cancel the scale-up ({obs.not_ready} not ready;"
                                        f" ratio {raw:.3f} -> {ratio:.3f})")
        if abs(ratio - 1.0) <= self.tolerance + EPS:
            return current, ratio, "within tolerance"
        rec = _ceil(pods * ratio)
        # The controller's guard: never move against the signal (possible when few pods are ready).
        if ratio > 1.0 and rec < current:
            return current, ratio, (f"no change: scale-up wanted but ceil({pods} x {ratio:.3f}) = {rec}"
                                    f" is below the {current} replicas")
        if ratio < 1.0 and rec > current:
            return current, ratio, (f"no change: scale-down wanted but ceil({pods} x {ratio:.3f}) = {rec}"
                                    f" is above the {current} replicas")
        if rec > current:
            return rec, ratio, "scale up"
        if rec < current:
            return rec, ratio, "scale down"
        return rec, ratio, "no change (the recommendation is the current count)"

    # ---- bookkeeping ----------------------------------------------------------------------------

    def _forget(self, now: float) -> None:
        """Drop recommendations older than the stabilization window, scale-ups older than 15 s.

        The windows are open at the old end, as in the controller (a record exactly
        `window` seconds old is gone): with the default 15 s period, the scale-up of
        the previous period no longer counts, and a 300 s window holds 20 decisions.
        """
        while self.recommendations and self.recommendations[0][0] <= now - self.window + EPS:
            self.recommendations.popleft()
        while self.scale_ups and self.scale_ups[0][0] <= now - SCALE_UP_POLICY_PERIOD + EPS:
            self.scale_ups.popleft()

    def _set(self, now: float, current: int, desired: int, value: float | None, ratio: float | None,
             recommendation: int, reason: str) -> Decision:
        if desired > current:
            self.scale_ups.append((now, desired - current))
        return Decision(now, current, desired, value, ratio, recommendation, reason)
