"""The HPA control loop of one service: every `period`, read the signal over the
last `window`, ask `Hpa` for a decision, apply it and log it.

Signals, as the HPA would get them: `cpu` is each ready pod's event-loop
utilisation over the window (metrics-server), averaged; `latency_p99` and
`latency_mean` are the service's, over the requests that ended in the window
(a custom metric); `pool_waiting` and `inflight` are time-weighted means per
ready pod. New pods start in `starting`, so the effect of a decision lags by
the startup and warm-up.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..metrics import HIST_BINS
from ..timeseries import hist_percentiles
from .hpa import Decision, Hpa, Observation
from .pod import READY
from .timer import Timer

if TYPE_CHECKING:
    from .world import Service

UNITS = {"cpu": "%", "latency_p99": "s", "latency_mean": "s", "pool_waiting": "per pod", "inflight": "per pod"}


def describe(signal: str, value: float | None) -> str:
    """A signal's value as a person reads it."""
    if value is None:
        return "no data"
    if signal == "cpu":
        return f"CPU {100 * value:.0f} %"
    if signal.startswith("latency"):
        return f"{signal.replace('latency_', '')} {value * 1000:.0f} ms" if value < 1 else \
            f"{signal.replace('latency_', '')} {value:.1f} s"
    return f"{signal} {value:.1f} per pod"


class Autoscaler:
    """One service's HorizontalPodAutoscaler."""

    def __init__(self, service: "Service", config):
        self.service = service
        self.env = service.env
        self.config = config
        self.hpa = Hpa(config)
        self.recorder = service.recorder
        self.cpu_history: dict[object, list[tuple[float, float]]] = {}
        self.decisions: list[Decision] = []
        Timer(self.env, config.period, self._tick)

    def _tick(self, _timer: Timer) -> None:
        now = self.env.now
        svc = self.service
        live = svc.live_pods()
        ready = [p for p in live if p.state == READY]
        obs = Observation(current=svc.desired, value=self._signal(now, ready), ready=len(ready),
                          not_ready=len(live) - len(ready))
        decision = self.hpa.decide(now, obs)
        self.decisions.append(decision)
        c = self.config
        target = describe(c.signal, c.target).split(" ", 1)[-1] if c.signal != "cpu" else f"{100 * c.target:.0f} %"
        detail = (f"{describe(c.signal, decision.value)} against a target of {target}: "
                  f"{decision.current} -> {decision.desired} pods ({decision.reason})")
        if decision.desired > decision.current:
            kind = "scale_up"
        elif decision.desired < decision.current:
            kind = "scale_down"
        else:
            kind = "scale_hold"
        self.recorder.event(now, svc.name, kind, detail)
        if decision.desired != decision.current:
            svc.set_replicas(decision.desired)
        Timer(self.env, c.period, self._tick)

    def _signal(self, now: float, ready: list) -> float | None:
        signal = self.config.signal
        if signal == "cpu":
            return self._cpu(now, ready)
        rec = self.recorder
        series = self.service.series
        b1 = int(now * rec.inv_bucket + 1e-9)
        b0 = max(0, b1 - max(1, round(self.config.window * rec.inv_bucket)))
        if signal in ("latency_p99", "latency_mean"):
            done = sum(series.completions[b0:b1])
            if done == 0:
                return None
            if signal == "latency_mean":
                return sum(series.latency_sum[b0:b1]) / done
            hist = np.frombuffer(series.hist, dtype=np.int64)[b0 * HIST_BINS:b1 * HIST_BINS]
            return float(hist_percentiles(hist.reshape(-1, HIST_BINS).sum(axis=0), 0.99)[0])
        if not ready:
            return None
        level = series.pool_waiting if signal == "pool_waiting" else series.inflight
        level.set(now, level.value)  # integrate up to now before reading the window
        seconds = (b1 - b0) * rec.bucket
        return sum(level.area[b0:b1]) / seconds / len(ready)

    def _cpu(self, now: float, ready: list) -> float | None:
        """Mean over ready pods of each one's event-loop utilisation over the window."""
        window = self.config.window
        values = []
        for pod in ready:
            history = self.cpu_history.setdefault(pod, [])
            busy = pod.cpu_busy_until(now)
            history.append((now, busy))
            while len(history) > 1 and history[1][0] <= now - window + 1e-9:
                history.pop(0)
            t0, busy0 = history[0]
            if now - t0 > 0:
                values.append(min(1.0, (busy - busy0) / (now - t0)))
        for pod in list(self.cpu_history):
            if pod not in ready:
                del self.cpu_history[pod]
        return sum(values) / len(values) if values else None
