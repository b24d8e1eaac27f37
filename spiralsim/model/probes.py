"""A pod's liveness and readiness probes, as the kubelet runs them.

Every `period` the kubelet sends an HTTP GET; the pod's event loop answers it when it
gets to it, so the answer comes after the loop's lag. No answer within `timeout` is a
failure; `failure_threshold` failures in a row fail the probe (a success resets the
count; Kubernetes' successThreshold is 1). A failed liveness probe kills the container
(restarted with the CrashLoopBackOff delay, like a crash); a failed readiness probe
takes the pod out of the balancer until a probe succeeds again. Probing starts when the
app listens (after `startup`) plus `initial_delay`, as a startup probe or an initial
delay covering the boot would have it. Pods already running at time 0 were started at
different times: their probes are spread over a period (`PHASE_STEP`), not in step.
"""
from __future__ import annotations

from typing import Any

from simpy import Environment

from ..scenario import ProbeConfig
from .timer import Timer

#: Pods running at time 0: pod i's first probe at frac(i x PHASE_STEP) of a period (the golden
#: ratio's fraction spreads any number of pods evenly and deterministically).
PHASE_STEP = 0.6180339887498949


class Probe:
    """One probe (liveness or readiness) of one pod; `start()` at each new process."""

    __slots__ = ("env", "pod", "config", "liveness", "failures", "gen")

    def __init__(self, env: Environment, pod: Any, config: ProbeConfig, liveness: bool):
        """`pod`: the `Pod` it probes (its loop, its state, its place in the balancer)."""
        self.env = env
        self.pod = pod
        self.config = config
        self.liveness = liveness
        self.failures = 0
        self.gen = -1

    def start(self, phase: float = 0.0) -> None:
        """The app listens: the first probe after `initial_delay` (+ `phase` of a period), then every `period`."""
        self.failures = 0
        self.gen = self.pod.gen
        Timer(self.env, self.config.initial_delay + phase * self.config.period, self._probe, self.gen)

    def _probe(self, timer: Timer) -> None:
        pod = self.pod
        if timer.arg != pod.gen or not pod.running:
            return  # that process is gone; its successor probes anew
        now = self.env.now
        lag = pod.loop.lag(now)
        if lag >= self.config.timeout:
            self.failures += 1
            if self.failures >= self.config.failure_threshold:
                detail = (f"{self.config.failure_threshold} probes in a row unanswered within"
                          f" {self.config.timeout:g} s (event loop {lag:.1f} s behind)")
                if self.liveness:  # the kubelet kills the container; it restarts as after a crash
                    pod.crash(f"liveness probe failed: {detail}", "liveness_restart")
                    return
                self._unready(detail)
        else:
            self.failures = 0
            if not self.liveness:
                self._ready_again()
        Timer(self.env, self.config.period, self._probe, timer.arg)

    def _unready(self, detail: str) -> None:
        """Out of the balancer (its attempts in flight go on) until a probe passes again."""
        pod = self.pod
        if not pod.is_ready or pod.unready:
            return
        pod.ready.remove(pod)
        pod.unready = True
        pod.series.pods_unready.add(self.env.now, 1.0)
        pod.recorder.event(self.env.now, pod.wiring.service, "pod_unready",
                           f"{pod.name} out of the balancer: readiness {detail}")

    def _ready_again(self) -> None:
        pod = self.pod
        if not pod.unready:
            return
        pod.unready = False
        pod.series.pods_unready.add(self.env.now, -1.0)
        pod.ready.append(pod)
        pod.recorder.event(self.env.now, pod.wiring.service, "pod_ready", f"{pod.name} ready again (readiness)")
