"""What an autoscaler can scale on: one row per signal, read by the scenario (how its
target is written), the HPA (which of the Kubernetes replica calculator's rules apply)
and the control loop (how the value is read and shown)."""
from __future__ import annotations

from dataclasses import dataclass

#: The HPA's metric source types (autoscaling/v2 `MetricSpec.type`) a signal can be.
METRIC_TYPES = ("Resource", "Pods", "Object")


@dataclass(frozen=True)
class Signal:
    """One `autoscaler.signal`.

    `reads` says how the control loop measures it over the window: `pod_cpu` (each
    pod's event-loop utilisation, from metrics-server), `latency_p99` /
    `latency_mean` (the service's requests that ended in the window), `error_rate`
    (the service's attempts answered in the window: the failed ones over all), `gauge`
    (the service gauge named `name`, time-weighted, per pod with a metric) or
    `pool_utilization` (each pod's connections in use over its pool's `max`).
    `metric` is the HPA metric type a team would declare for it, which decides
    the replica calculator's rules: `Resource` (cpu, a utilisation of the
    request), `Pods` (a custom metric each pod exports, averaged over the pods),
    `Object` (one value for the whole Service, target type `Value`). A latency
    target is a duration.
    """

    name: str
    unit: str       # of the value and the target: "share" (0..1), "s", "per pod"
    reads: str
    latency: bool
    metric: str     # one of METRIC_TYPES

    @property
    def resource(self) -> bool:
        """A Resource metric (metrics-server's cpu): not-ready pods set aside for its initialisation."""
        return self.metric == "Resource"

    @property
    def per_pod(self) -> bool:
        """A mean over the pods that have a metric (Resource and Pods metrics)."""
        return self.metric != "Object"


SIGNALS: dict[str, Signal] = {s.name: s for s in (
    Signal("cpu", "share", "pod_cpu", latency=False, metric="Resource"),
    Signal("latency_p99", "s", "latency_p99", latency=True, metric="Object"),
    Signal("latency_mean", "s", "latency_mean", latency=True, metric="Object"),
    Signal("error_rate", "share", "error_rate", latency=False, metric="Object"),
    Signal("pool_waiting", "per pod", "gauge", latency=False, metric="Pods"),
    Signal("inflight", "per pod", "gauge", latency=False, metric="Pods"),
    Signal("pool_utilization", "share", "pool_utilization", latency=False, metric="Pods"),
)}
