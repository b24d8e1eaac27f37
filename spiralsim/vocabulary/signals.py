"""What an autoscaler can scale on: one row per signal, read by the scenario (how its
target is written), the HPA (which pods the value is a mean over) and the control
loop (how the value is read and shown)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Signal:
    """One `autoscaler.signal`.

    `reads` says how the control loop measures it over the window: `pod_cpu` (each
    ready pod's event-loop utilisation, averaged), `latency_p99` / `latency_mean`
    (the service's requests that ended in the window) or `gauge` (the service gauge
    named `name`, time-weighted, per ready pod). A latency is service-wide: its
    target is a duration and the HPA scales the whole deployment by the ratio. A
    `resource` metric (metrics-server's) counts not-ready pods at 0 % on a scale-up.
    """

    name: str
    unit: str       # of the value and the target: "share" (0..1), "s", "per pod"
    reads: str
    latency: bool
    resource: bool = False

    @property
    def per_pod(self) -> bool:
        """A mean over the ready pods (the HPA's N is the pods it was taken over)."""
        return not self.latency


SIGNALS: dict[str, Signal] = {s.name: s for s in (
    Signal("cpu", "share", "pod_cpu", latency=False, resource=True),
    Signal("latency_p99", "s", "latency_p99", latency=True),
    Signal("latency_mean", "s", "latency_mean", latency=True),
    Signal("pool_waiting", "per pod", "gauge", latency=False),
    Signal("inflight", "per pod", "gauge", latency=False),
)}
