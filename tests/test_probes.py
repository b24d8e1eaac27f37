"""Liveness and readiness probes answered by the pod's event loop, on tiny deterministic cases."""
from __future__ import annotations

import pytest
from builders import TEXTBOOK, scenario

from spiralsim.model.world import World

#: Forty requests of 2 s of event-loop CPU each by 5 s: the loop is booked until 80.125 s.
SATURATED = ("services.api.pod.cpu_per_request=2s", "services.api.pool.max=40")


def events(rec, kind: str) -> list:
    return [e for e in rec.events if e.kind == kind]


def test_probes_are_off_by_default():
    rec = World(scenario(TEXTBOOK, *SATURATED, duration="100s")).run()
    assert not events(rec, "liveness_restart") and rec.services["api"].crashes == 0


def test_a_saturated_loop_fails_liveness_and_the_kubelet_kills_the_pod():
    # Probes every 10 s from 0 (timeout 1 s, 3 failures): at 0 the loop is idle; at 10, 20 and
    # 30 s it is tens of seconds behind: the third failure, at 30 s, kills the container.
    # Its 40 attempts in flight fail with it, none answered: each result queues behind the CPU
    # booked for later requests. The restart (at once: a first crash) pays startup.
    rec = World(scenario(TEXTBOOK, *SATURATED, "services.api.pod.liveness.period=10s", duration="100s")).run()
    kills = events(rec, "liveness_restart")
    assert [e.time for e in kills] == [30.0]
    assert "liveness probe failed" in kills[0].detail and "restart in 0 s" in kills[0].detail
    c = rec.services["api"].cols
    assert c["failures_pod_crashed"].sum() == 40 and c["successes"].sum() == 0
    # after the kill, the loop's booked work is gone: the CPU series stops at 30 s
    assert c["cpu_busy"].sum() == pytest.approx(30.0 - 0.125)


def test_a_loop_that_keeps_up_passes_liveness():
    rec = World(scenario(TEXTBOOK, "services.api.pod.cpu_per_request=100ms",
                         "services.api.pod.liveness.period=1s", duration="60s")).run()
    assert not events(rec, "liveness_restart")
    assert rec.services["api"].cols["successes"].sum() == 40


def test_readiness_takes_a_busy_pod_out_of_the_balancer_and_back():
    # Two pods, round robin: twenty requests each of 2 s CPU, booked until 40.125 s and 40.25 s.
    # Readiness probes every 5 s (3 failures), pod 0's at 0, 5, 10, ..., pod 1's a 0.618 period
    # later (pods running at time 0 are not probed in step): both fail from their second probe
    # and are out at 15 s and 13.09 s. Pod 0 at 40 s is 0.125 s behind, within the 1 s timeout:
    # back; pod 1 at 38.09 s is 2.16 s behind, at 43.09 s idle: back then.
    rec = World(scenario(TEXTBOOK, *SATURATED, "services.api.pod.replicas=2",
                         "services.api.pod.readiness.period=5s", duration="100s")).run()
    out = events(rec, "pod_unready")
    back = [e for e in events(rec, "pod_ready") if "again" in e.detail]
    phase = 0.6180339887498949 * 5.0
    assert [e.time for e in out] == pytest.approx([10 + phase, 15.0])
    assert [e.time for e in back] == pytest.approx([40.0, 40 + phase])
    c = rec.services["api"].cols
    assert c["successes"].sum() == 40  # readiness never kills: every attempt in flight finishes
    assert c["pods_unready_peak"].max() == 2


def test_liveness_turns_a_cpu_spike_into_restarts():
    # Directional: the same CPU-heavy spike, with and without liveness probes.
    base = ("services.api.pod.cpu_per_request=50ms", "services.api.traffic.rate=30",
            "services.api.traffic.phases.0.start=60s", "services.api.pool.max=40")
    without = World(scenario(TEXTBOOK, *base, duration="120s")).run()
    with_probes = World(scenario(TEXTBOOK, *base, "services.api.pod.liveness.period=5s", duration="120s")).run()
    assert without.services["api"].crashes == 0
    assert with_probes.services["api"].crashes >= 1
    assert (with_probes.services["api"].cols["failures_pod_crashed"].sum()
            > without.services["api"].cols["failures_pod_crashed"].sum())
