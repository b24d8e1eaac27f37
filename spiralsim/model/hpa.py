"""The Kubernetes HorizontalPodAutoscaler decision, one sync period at a time.

Pure logic (no SimPy, no I/O): the simulator reads the signal over the window,
sorts the pods as the controller does, builds an `Observation` and calls
`Hpa.decide(now, obs)` every `period`; the `Decision` says what to set the
deployment to and why.

The replica calculator of kubernetes/kubernetes
(`pkg/controller/podautoscaler/replica_calculator.go`), by metric type:

- Resource (cpu, `GetResourceReplicas`) and Pods (`GetMetricReplicas` ->
  `calcPlainMetricReplicas`): ratio = mean / target over the pods with a metric.
  With no unready pod on a scale-up and no pod missing its metric: within the
  tolerance nothing changes, else ceil(ratio x those pods). Otherwise the
  missing pods count at the target (cpu: max(100 %, target)) on a scale-down
  and at 0 on a scale-up, the unready pods at 0 on a scale-up, the ratio is
  computed again over them all, and nothing changes if it falls within the
  tolerance, changes direction, or its ceil(ratio x pods) goes against it;
- Object, target type Value (`GetObjectMetricReplicas` ->
  `getUsageRatioReplicaCount`): one value for the Service; within the tolerance
  nothing changes, else ceil(ratio x the pods Running and Ready);
- no metric at all: the controller fails the sync; nothing changes and nothing is
  remembered (`reconcileAutoscaler`); its first sync remembers the current count
  (`recordInitialRecommendation`).

Several metrics (`horizontal.go`, `computeReplicasForMetrics`): each metric's
recommendation as above, the largest wins (the first of equal ones); a metric
without data is left out, unless all are, or the others' largest is below the
replica count: then the sync fails as with no metric (no scale-down on part of
the picture).

Then `horizontal.go`: a replica count outside [min, max] goes straight back to the
bound, before any metric; the recommendation is clamped to [min, max]; scale up
by at most max(+100 %, +4 pods) per 15 s (the default scaleUp policies,
selectPolicy Max, from the replica count at the start of the 15 s); no scale-up
stabilization; scale down only to the highest recommendation of the last
`scale_down_stabilization` seconds (this one included). The default scale-down
policy (100 % per 15 s) never binds, so it is not modelled.
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
    """What one sync sees: the replica count, the metric, and the pods sorted as `groupPods` does."""

    current: int          # the deployment's replica count now (spec.replicas)
    value: float | None   # Resource/Pods: the mean over the `ready` pods (cpu 0..1, a count or a share per
                          # pod); Object: the Service's value (seconds for a latency); None: no metric
    ready: int            # Resource/Pods: the pods whose metric the mean is over (readyPodCount);
                          # Object: the pods Running and Ready (getReadyPodsCount)
    not_ready: int = 0    # unready pods, set aside: 0 on a scale-up, left out otherwise (Resource/Pods)
    missing: int = 0      # pods without a metric: the target on a scale-down, 0 on a scale-up (Resource/Pods)


@dataclass(frozen=True)
class Metric:
    """One metric the HPA reads: its signal, the metric type whose rules apply, its target."""

    signal: str
    kind: str             # Resource, Pods or Object (vocabulary.METRIC_TYPES)
    target: float
    fallback: float       # a missing pod on a scale-down: the target (Pods), max(100 %, target) (cpu)


@dataclass(frozen=True)
class Proposal:
    """One metric's recommendation (`computeReplicasForMetric`); `replicas` None: no data."""

    signal: str
    value: float | None
    ratio: float | None
    replicas: int | None
    reason: str


@dataclass(frozen=True)
class Decision:
    time: float
    current: int
    desired: int          # what the deployment is set to (== current when nothing changes)
    value: float | None   # the winning metric's
    ratio: float | None   # value / target as used (after the not-ready correction)
    recommendation: int   # the raw recommendation clamped to [min, max], before rate limit and stabilization
    reason: str
    metric: str = ""      # the signal whose recommendation won ("" when none did)
    proposals: tuple[Proposal, ...] = ()  # every metric's, in the order of the metrics


def _direction(rec: int, current: int) -> str:
    """Why a recommendation moves the count, or does not."""
    if rec > current:
        return "scale up"
    if rec < current:
        return "scale down"
    return "no change (the recommendation is the current count)"


def _ceil(x: float) -> int:
    """ceil, forgiving float noise: 3 x 1.2 = 3.5999999999999996 -> 4, 5.000000000000001 -> 5."""
    return math.ceil(x - EPS)


class Hpa:
    """One HPA: remembers its recent recommendations and scale-ups between calls."""

    def __init__(self, config: AutoscalerConfig):
        """The settings of one `autoscaler` table; each metric's type comes from its signal's row."""
        self.config = config
        self.metrics: list[Metric] = []
        for spec in config.specs:
            kind, target = SIGNALS[spec.signal].metric, float(spec.target)
            # a missing pod on a scale-down: the target (Pods), 100 % of its request or the target if higher (cpu)
            self.metrics.append(Metric(spec.signal, kind, target, max(1.0, target) if kind == "Resource" else target))
        self.min: int = int(config.min_replicas)
        self.max: int = int(config.max_replicas)
        self.tolerance: float = float(config.tolerance)
        self.window: float = float(config.scale_down_stabilization)
        self.recommendations: deque[tuple[float, int]] = deque()  # (time, clamped recommendation)
        self.scale_ups: deque[tuple[float, int]] = deque()        # (time, replicas added)
        self.synced = False

    # ---- the decision ----------------------------------------------------------------------------

    def decide(self, now: float, *observations: Observation) -> Decision:
        """One sync, one observation per metric in their order: the replica count to set and why,
        as `reconcileAutoscaler` would."""
        if len(observations) != len(self.metrics):
            raise ValueError(f"expected {len(self.metrics)} observations, one per metric, got {len(observations)}")
        current = observations[0].current
        if not self.synced:  # recordInitialRecommendation: the first sync remembers the count it found
            self.synced = True
            self.recommendations.append((now, min(max(current, self.min), self.max)))
        self._forget(now)

        # Replicas outside [min, max]: straight back to the bound, before any metric.
        if current > self.max or current < self.min:
            bound = self.max if current > self.max else self.min
            first = observations[0]
            ratio = None if first.value is None else first.value / self.metrics[0].target
            which = "max_replicas" if current > self.max else "min_replicas"
            side = "above" if current > self.max else "below"
            return self._set(now, current, bound, first.value, ratio, bound,
                             f"limited by {which} ({current} replicas {side} it)")
        proposals = tuple(self._propose(m, o) for m, o in zip(self.metrics, observations))
        best = self._largest(proposals)
        if best is None or (best.replicas < current and any(p.replicas is None for p in proposals)):
            # the sync fails: no change, nothing remembered
            reason = "no data" if best is None else \
                f"no data for {', '.join(p.signal for p in proposals if p.replicas is None)}: no scale-down"
            return self._set(now, current, current, None, None, current, reason, proposals=proposals)
        return self._limit(now, current, best, proposals)

    def _limit(self, now: float, current: int, best: Proposal, proposals: tuple[Proposal, ...]) -> Decision:
        """The winning recommendation clamped, remembered, then rate-limited or stabilized."""
        rec, reason = best.replicas, best.reason
        assert rec is not None
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
        return self._set(now, current, desired, best.value, best.ratio, clamped, reason, best.signal, proposals)

    @staticmethod
    def _largest(proposals: tuple[Proposal, ...]) -> Proposal | None:
        """The largest recommendation among the metrics with data, the first of equal ones (None: no data)."""
        best = None
        for p in proposals:
            if p.replicas is not None and (best is None or p.replicas > best.replicas):
                best = p
        return best

    def _propose(self, metric: Metric, obs: Observation) -> Proposal:
        """One metric's recommendation, by its type's rules."""
        if obs.value is None:
            return Proposal(metric.signal, None, None, None, "no data")
        rec, ratio, reason = self._object(metric, obs) if metric.kind == "Object" else self._per_pod(metric, obs)
        return Proposal(metric.signal, obs.value, ratio, rec, reason)

    def _within(self, ratio: float) -> bool:
        return abs(ratio - 1.0) <= self.tolerance + EPS

    def _object(self, metric: Metric, obs: Observation) -> tuple[int, float, str]:
        """An Object metric with a Value target (getUsageRatioReplicaCount): the ready pods x the ratio."""
        current = obs.current
        ratio = obs.value / metric.target
        if self._within(ratio):
            return current, ratio, "within tolerance"
        rec = _ceil(ratio * obs.ready)
        return rec, ratio, _direction(rec, current)

    def _per_pod(self, metric: Metric, obs: Observation) -> tuple[int, float, str]:
        """A Resource or Pods metric (GetResourceReplicas, calcPlainMetricReplicas): the mean over the pods
        with a metric, then, with pods unready on a scale-up or missing, again over them all."""
        current = obs.current
        ratio = obs.value / metric.target
        unready = obs.not_ready if ratio > 1.0 + EPS else 0  # scaleUpWithUnready
        if not unready and not obs.missing:
            if self._within(ratio):
                return current, ratio, "within tolerance"
            rec = _ceil(ratio * obs.ready)
            return rec, ratio, _direction(rec, current)
        total, pods, missing_at = obs.value * obs.ready, obs.ready + unready, ""
        if obs.missing and abs(ratio - 1.0) > EPS:
            pods += obs.missing
            if ratio < 1.0:
                total += metric.fallback * obs.missing
            missing_at = f", {obs.missing} missing at {'the target' if ratio < 1.0 else '0'}"
        new = total / pods / metric.target
        assumed = f"{unready} not ready at 0{missing_at}; ratio {ratio:.3f} -> {new:.3f}"
        if self._within(new) or (ratio < 1.0 < new) or (ratio > 1.0 > new):
            if not obs.missing:
                return current, new, f"not-ready pods at 0 % cancel the scale-up ({assumed})"
            return current, new, f"pods without a metric cancel the change ({assumed})"
        rec = _ceil(new * pods)
        if new > 1.0 and rec < current:
            return current, new, f"no change: scale-up wanted but ceil({pods} x {new:.3f}) = {rec} is below " \
                                 f"the {current} replicas ({assumed})"
        if new < 1.0 and rec > current:
            return current, new, f"no change: scale-down wanted but ceil({pods} x {new:.3f}) = {rec} is above " \
                                 f"the {current} replicas ({assumed})"
        return rec, new, _direction(rec, current)

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
             recommendation: int, reason: str, metric: str = "", proposals: tuple[Proposal, ...] = ()) -> Decision:
        if desired > current:
            self.scale_ups.append((now, desired - current))
        return Decision(now, current, desired, value, ratio, recommendation, reason, metric, proposals)
