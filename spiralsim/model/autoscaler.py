"""The HPA control loop of one service: every `period`, read the signal over the
last `window`, ask `Hpa` for a decision, apply it and log it.

Signals, as the HPA would get them (how each is read: `vocabulary.SIGNALS`): `cpu`
is each ready pod's event-loop utilisation over the window (metrics-server),
averaged; `latency_p99` and `latency_mean` are the service's, over the requests
that ended in the window (a custom metric); `pool_waiting` and `inflight` are
time-weighted means per ready pod. New pods start in `starting`, so the effect of
a decision lags by the startup and warm-up.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
from simpy import Environment

from ..metrics import HIST_BINS, Recorder, ServiceSeries, hist_percentiles
from ..scenario import AutoscalerConfig
from ..vocabulary import SIGNALS, Signal
from .hpa import Decision, Hpa, Observation
from .pod import READY, Pod
from .timer import Timer


class Replicas(Protocol):
    """The deployment an autoscaler scales: its replica count and its pods."""

    desired: int

    def live_pods(self) -> list[Pod]: ...

    def set_replicas(self, n: int) -> None: ...


def describe(signal: Signal, value: float | None) -> str:
    """A signal's value as a person reads it ("CPU 82 %", "p99 6.3 s", "inflight 3.2 per pod")."""
    if value is None:
        return "no data"
    if signal.unit == "share":
        return f"CPU {100 * value:.0f} %"
    if signal.latency:
        which = signal.name.replace("latency_", "")
        return f"{which} {value * 1000:.0f} ms" if value < 1 else f"{which} {value:.1f} s"
    return f"{signal.name} {value:.1f} per pod"


def describe_target(signal: Signal, target: float) -> str:
    """The target as the scale events show it ("70 %", "200 ms", "3.0 per pod")."""
    if signal.unit == "share":
        return f"{100 * target:.0f} %"
    return describe(signal, target).split(" ", 1)[-1]


class Autoscaler:
    """One service's HorizontalPodAutoscaler."""

    def __init__(self, env: Environment, config: AutoscalerConfig, deployment: Replicas, service: str,
                 series: ServiceSeries, recorder: Recorder):
        self.env = env
        self.config = config
        self.signal = SIGNALS[config.signal]
        self.hpa = Hpa(config)
        self.deployment = deployment
        self.service = service
        self.series = series
        self.recorder = recorder
        self.target_text = describe_target(self.signal, config.target)
        self.cpu_history: dict[Pod, list[tuple[float, float]]] = {}
        self.decisions: list[Decision] = []
        Timer(self.env, config.period, self._tick)

    def _tick(self, _timer: Timer) -> None:
        now = self.env.now
        deployment = self.deployment
        live = deployment.live_pods()
        ready = [p for p in live if p.state == READY]
        obs = Observation(current=deployment.desired, value=self._read(now, ready), ready=len(ready),
                          not_ready=len(live) - len(ready))
        decision = self.hpa.decide(now, obs)
        self.decisions.append(decision)
        detail = (f"{describe(self.signal, decision.value)} against a target of {self.target_text}: "
                  f"{decision.current} -> {decision.desired} pods ({decision.reason})")
        if decision.desired > decision.current:
            kind = "scale_up"
        elif decision.desired < decision.current:
            kind = "scale_down"
        else:
            kind = "scale_hold"
        self.recorder.event(now, self.service, kind, detail, decision)
        if decision.desired != decision.current:
            deployment.set_replicas(decision.desired)
        Timer(self.env, self.config.period, self._tick)

    def _read(self, now: float, ready: list[Pod]) -> float | None:
        """The signal's value over the window, as `vocabulary.SIGNALS` says it is read."""
        reads = self.signal.reads
        if reads == "pod_cpu":
            return self._cpu(now, ready)
        rec = self.recorder
        series = self.series
        b1 = int(now * rec.inv_bucket + 1e-9)
        b0 = max(0, b1 - max(1, round(self.config.window * rec.inv_bucket)))
        if self.signal.latency:
            done = sum(series.completions[b0:b1])
            if done == 0:
                return None
            if reads == "latency_mean":
                return sum(series.latency_sum[b0:b1]) / done
            hist = np.frombuffer(series.hist, dtype=np.int64)[b0 * HIST_BINS:b1 * HIST_BINS]
            return float(hist_percentiles(hist.reshape(-1, HIST_BINS).sum(axis=0), 0.99)[0])
        if not ready:
            return None
        level = getattr(series, self.signal.name)  # a `gauge` signal is the service gauge of its name
        level.set(now, level.value)  # integrate up to now before reading the window
        seconds = (b1 - b0) * rec.bucket
        return sum(level.area[b0:b1]) / seconds / len(ready)

    def _cpu(self, now: float, ready: list[Pod]) -> float | None:
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
