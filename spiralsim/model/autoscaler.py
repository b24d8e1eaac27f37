"""The HPA control loop of one service: every `period`, read the signal over the
last `window`, sort the pods as the controller's `groupPods` does, ask `Hpa` for a
decision, apply it and log it.

Each signal is the HPA metric type a team would declare for it
(`vocabulary.SIGNALS`): `cpu` a Resource metric (metrics-server's per-pod
event-loop utilisation); `pool_waiting`, `inflight` and `pool_utilization` Pods
metrics (each pod's own value, exported by the app and averaged over the pods
that have one); `latency_p99`, `latency_mean` and `error_rate` Object metrics
(the Service's, over the requests that ended, or the attempts answered, in the
window). With several metrics, each is read and `Hpa` takes the largest
recommendation. New pods start in `starting`, so the effect of a decision lags
by the image pull, the startup and the warm-up.
"""
from __future__ import annotations

from typing import Protocol

import numpy as np
from simpy import Environment

from ..metrics import HIST_BINS, Recorder, ServiceSeries, hist_percentiles
from ..scenario import AutoscalerConfig
from ..vocabulary import SIGNALS, Signal
from .hpa import Decision, Hpa, Observation
from .pod import CRASHLOOP, STARTING, Pod
from .timer import Timer

# kube-controller-manager's --horizontal-pod-autoscaler-cpu-initialization-period (5 min): within it
# of a pod's start, a cpu sample counts only from a ready pod, taken a whole window after it became ready
CPU_INITIALIZATION_PERIOD_S = 300.0
UNREADY, MISSING, COUNTED = range(3)
#: How a share is named in the scale events.
SHARE_LABELS = {"cpu": "CPU", "pool_utilization": "pool", "error_rate": "errors"}


class Replicas(Protocol):
    """The deployment an autoscaler scales: its replica count and its pods."""

    desired: int

    def live_pods(self) -> list[Pod]: ...

    def set_replicas(self, n: int) -> None: ...


def describe(signal: Signal, value: float | None) -> str:
    """A signal's value as a person reads it ("CPU 82 %", "p99 6.3 s", "errors 4.2 %", "inflight 3.2 per pod")."""
    if value is None:
        return "no data"
    if signal.unit == "share":
        digits = 1 if signal.name == "error_rate" else 0
        return f"{SHARE_LABELS.get(signal.name, signal.name)} {100 * value:.{digits}f} %"
    if signal.latency:
        which = signal.name.replace("latency_", "")
        return f"{which} {value * 1000:.0f} ms" if value < 1 else f"{which} {value:.1f} s"
    return f"{signal.name} {value:.1f} per pod"


def describe_target(signal: Signal, target: float) -> str:
    """The target as the scale events show it ("70 %", "200 ms", "5 %", "3.0 per pod")."""
    if signal.unit == "share":
        return f"{100 * target:g} %" if signal.name == "error_rate" else f"{100 * target:.0f} %"
    return describe(signal, target).split(" ", 1)[-1]


class Autoscaler:
    """One service's HorizontalPodAutoscaler."""

    def __init__(self, env: Environment, config: AutoscalerConfig, deployment: Replicas, service: str,
                 series: ServiceSeries, recorder: Recorder):
        """Its first decision comes one `period` after the start."""
        self.env = env
        self.config = config
        self.signals = [SIGNALS[spec.signal] for spec in config.specs]
        self.signal = self.signals[0]
        self.hpa = Hpa(config)
        self.deployment = deployment
        self.service = service
        self.series = series
        self.recorder = recorder
        self.target_texts = [describe_target(SIGNALS[spec.signal], spec.target) for spec in config.specs]
        # cpu samples of each running container, (time, busy seconds), keyed by the container's start
        self.cpu_history: dict[Pod, tuple[float, list[tuple[float, float]]]] = {}
        self.ready_seen: dict[Pod, float] = {}  # the first decision that found each pod ready (this time)
        self.decisions: list[Decision] = []
        Timer(self.env, config.period, self._tick)

    def _tick(self, _timer: Timer) -> None:
        now = self.env.now
        deployment = self.deployment
        live = deployment.live_pods()
        for pod in list(self.ready_seen):
            if not pod.is_ready or pod not in live:
                del self.ready_seen[pod]
        for pod in live:
            if pod.is_ready:
                self.ready_seen.setdefault(pod, now)
        observations = [self._observe(now, deployment.desired, live, signal) for signal in self.signals]
        decision = self.hpa.decide(now, *observations)
        self.decisions.append(decision)
        detail = self._detail(decision)
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

    def _detail(self, d: Decision) -> str:
        """The scale event's words: the metric (with several, each one's ask and which won), the change, why."""
        change = f"{d.current} -> {d.desired} pods ({d.reason})"
        if len(self.signals) == 1:
            return f"{describe(self.signal, d.value)} against a target of {self.target_texts[0]}: {change}"
        parts = [f"{signal.name}: no data" if p.replicas is None else
                 f"{describe(signal, p.value)} against {text} asks {p.replicas}"
                 for signal, text, p in zip(self.signals, self.target_texts, d.proposals)]
        head = f"{d.metric} wins: " if d.metric else ""
        return f"{head}{'; '.join(parts) or 'metrics not read'}: {change}"

    def _observe(self, now: float, current: int, live: list[Pod], signal: Signal) -> Observation:
        """One signal and the pods as its metric type's calculator sorts them."""
        ready = [p for p in live if p.is_ready]
        if not signal.per_pod:  # an Object metric: the Service's value, the Running and Ready pods
            return Observation(current, self._service_value(now, signal), len(ready))
        values = self._cpu(now, live) if signal.reads == "pod_cpu" else self._pods_metric(now, live, signal)
        counted = [v for kind, v in values if kind == COUNTED]
        unready = sum(1 for kind, _ in values if kind == UNREADY)
        missing = sum(1 for kind, _ in values if kind == MISSING)
        if not counted:  # "did not receive metrics for targeted pods": the sync fails
            return Observation(current, None, 0, unready, missing)
        if signal.reads == "gauge":  # the service-wide gauge shared out over the pods with a metric
            mean = self._gauge(now, signal) / len(counted)
        else:
            mean = sum(counted) / len(counted)
        return Observation(current, mean, len(counted), unready, missing)

    def _buckets(self, now: float) -> tuple[int, int]:
        """The whole buckets of the last `window` before `now` (at least one)."""
        rec = self.recorder
        b1 = int(now * rec.inv_bucket + 1e-9)
        return max(0, b1 - max(1, round(self.config.window * rec.inv_bucket))), b1

    def _service_value(self, now: float, signal: Signal) -> float | None:
        """The Service's value over the window: a latency of its requests that ended (none ended: no data), or
        its error rate, the failed attempts over those answered: the requests that failed and the retries started
        (each follows a failed attempt), over those and the successes (none answered: no data)."""
        series = self.series
        b0, b1 = self._buckets(now)
        if signal.reads == "error_rate":
            failed = sum(sum(kind[b0:b1]) for kind in series.failures) + sum(series.retries[b0:b1])
            answered = failed + sum(series.successes[b0:b1])
            return failed / answered if answered > 0 else None
        done = series.completed(b0, b1)
        if done == 0:
            return None
        if signal.reads == "latency_mean":
            return sum(series.latency_sum[b0:b1]) / done
        series.latencies.flush()  # the latest bucket's latencies, binned before they are read
        hist = np.frombuffer(series.hist, dtype=np.int64)[b0 * HIST_BINS:b1 * HIST_BINS]
        return float(hist_percentiles(hist.reshape(-1, HIST_BINS).sum(axis=0), 0.99)[0])

    def _gauge(self, now: float, signal: Signal) -> float:
        """The service gauge named as the signal: its time-weighted mean over the window."""
        level = getattr(self.series, signal.name)
        level.set(now, level.value)  # integrate up to now before reading the window
        b0, b1 = self._buckets(now)
        return sum(level.area[b0:b1]) / ((b1 - b0) * self.recorder.bucket)

    def _pods_metric(self, now: float, live: list[Pod], signal: Signal) -> list[tuple[int, float]]:
        """A Pods metric: a pod still pulling its image is unready (Pending); one that is not ready has none
        (its app does not serve its metrics yet, or has died); a ready one has its own value."""
        out: list[tuple[int, float]] = []
        for pod in live:
            if pod.state == STARTING and now < pod.container_at:
                out.append((UNREADY, 0.0))
            elif not pod.is_ready or pod.lost:
                out.append((MISSING, 0.0))
            elif signal.reads == "pool_utilization":
                out.append((COUNTED, self._pool_utilization(now, pod)))
            else:
                out.append((COUNTED, 0.0))  # the gauge's share, computed once for all
        return out

    def _pool_utilization(self, now: float, pod: Pod) -> float:
        """One pod's connections in use (checked out or being opened) over its pools' `max`, time-weighted
        over the window, at most 1."""
        level = pod.in_use_level
        level.set(now, level.value)
        b0, b1 = self._buckets(now)
        in_use = sum(level.area[b0:b1]) / ((b1 - b0) * self.recorder.bucket)
        capacity = pod.wiring.pool_config.max * (1 + len(pod.read_pools))
        return min(1.0, in_use / capacity) if capacity > 0 else 0.0

    def _cpu(self, now: float, live: list[Pod]) -> list[tuple[int, float]]:
        """metrics-server's cpu and the Resource rules of `groupPods`: Pending is unready; a container that
        is not running (crash-looping) or has no sample span yet is missing; within the initialization
        period a pod counts only once ready for a whole window; after it, only a pod never ready is unready."""
        window = self.config.window
        out: list[tuple[int, float]] = []
        running = set()
        for pod in live:
            if pod.state == STARTING and now < pod.container_at:
                out.append((UNREADY, 0.0))
                continue
            if pod.state == CRASHLOOP or pod.lost:  # (a lost node's pods are not scraped)
                out.append((MISSING, 0.0))
                continue
            running.add(pod)
            start, history = self.cpu_history.get(pod, (None, []))
            if start != pod.started_at:
                history = []
                self.cpu_history[pod] = (pod.started_at, history)
            history.append((now, pod.cpu_busy_until(now)))
            while len(history) > 1 and history[1][0] <= now - window + 1e-9:
                history.pop(0)
            t0, busy0 = history[0]
            if now - t0 <= 0:
                out.append((MISSING, 0.0))
                continue
            value = min(1.0, (history[-1][1] - busy0) / (now - t0))
            seen = self.ready_seen.get(pod)
            if now < pod.pod_start + CPU_INITIALIZATION_PERIOD_S:
                unready = seen is None or now - seen < window - 1e-9
            else:
                unready = not pod.is_ready and not pod.ever_ready
            out.append((UNREADY, 0.0) if unready else (COUNTED, value))
        for pod in list(self.cpu_history):
            if pod not in running:
                del self.cpu_history[pod]
        return out
