"""Pods that start, warm, crash, restart and scale: exact cases and the push_spike directions."""
from __future__ import annotations

from pathlib import Path

import pytest
from builders import FORTY_ARRIVALS, LIFECYCLE, scenario

from spiralsim import load_scenario, simulate
from spiralsim.model.timer import Timer
from spiralsim.model.world import World

PUSH_SPIKE = Path(__file__).parent.parent / "scenarios" / "push_spike.toml"


def events(world: World, *kinds: str) -> list[tuple[float, str]]:
    return [(round(e.time, 6), e.detail) for e in world.recorder.events if e.kind in kinds]


def test_crash_loop_backoff_doubles_to_five_minutes():
    # One usable slot, held by the running pod; a second pod can never connect.
    world = World(scenario(
        LIFECYCLE, duration="1100s", database={"max_connections": 10, "other_connections": 6},
        services={"api": {"pod": {"warm_connections": 1, "require_db_at_start": True, "startup": "10s",
                                  "schedule": [{"at": "10s", "replicas": 2}]}}}))
    world.run()
    crashes = events(world, "pod_crash")
    delays = [0, 10, 20, 40, 80, 160, 300, 300, 300]  # the kubelet: at once, then 10 s doubling to 300 s
    # Crash k: starting 10 s, one refused connect 30 ms, then the back-off before the next start.
    expected, t = [], 10 + 10 + 0.03
    for d in delays:
        expected.append(round(t, 6))
        t += d + 10 + 0.03
    assert [c[0] for c in crashes] == expected
    assert [c[1].rsplit("restart in ", 1)[1] for c in crashes] == [f"{d} s" for d in delays]
    assert world.database.held == 1  # the crashing pod never keeps a slot


def test_crash_loop_backoff_resets_after_ten_minutes_running():
    world = World(scenario(LIFECYCLE, "services.api.pod.startup=10s", duration="800s"))
    pod = world.services["api"].pods[0]
    Timer(world.env, 700.0, lambda _t: pod.crash("test"))   # its first crash: restarted at once
    Timer(world.env, 730.0, lambda _t: pod.crash("test"))   # restarted at 700, ran 30 s: 10 s
    world.run()
    assert events(world, "pod_crash") == [(700.0, "api-0 crashed: test; restart in 0 s"),
                                          (730.0, "api-0 crashed: test; restart in 10 s")]
    assert events(world, "pod_ready") == [(710.0, "api-0 ready (0 connections open)"),
                                          (750.0, "api-0 ready (0 connections open)")]


def test_a_crash_fails_every_attempt_in_flight_and_frees_their_slots():
    world = World(scenario(LIFECYCLE, "services.api.endpoints.q.statement_wait=10s", "services.api.pool.max=50",
                           "services.api.pod.startup=1s", duration="30s",
                           services={"api": {"traffic": FORTY_ARRIVALS}}))
    pod = world.services["api"].pods[0]
    Timer(world.env, 6.0, lambda _t: pod.crash("test"))
    recording = world.run()
    c = recording.services["api"].cols
    assert c["arrivals"].sum() == 40
    assert c["failures_pod_crashed"].sum() == 40 and c["successes"].sum() == 0
    assert recording.services["api"].open_requests == 0
    assert world.database.held == 0  # statements ended by 15 s, their connections closed
    assert recording.services["api"].crashes == 1


def test_scale_down_drains_and_loses_nothing():
    world = World(scenario(
        LIFECYCLE, "services.api.endpoints.q.statement_wait=2s", duration="30s",
        services={"api": {"traffic": FORTY_ARRIVALS,
                          "pod": {"replicas": 4, "warm_connections": 5, "schedule": [{"at": "3s", "replicas": 1}]}}}))
    recording = world.run()
    c = recording.services["api"].cols
    assert c["successes"].sum() == 40 and c["failures_pod_crashed"].sum() == 0
    svc = world.services["api"]
    assert len(svc.live_pods()) == 1 and len(svc.ready) == 1
    assert world.database.held == svc.ready[0].pool.total  # the drained pods' connections are closed
    assert c["pods_terminating_peak"].max() == 3


def test_schedule_adds_pods_that_start_then_become_ready():
    world = World(scenario(LIFECYCLE, duration="30s", services={"api": {"pod": {
        "startup": "5s", "schedule": [{"at": "10s", "replicas": 3}]}}}))
    rec = world.run()
    c = rec.services["api"].cols
    ready = c["pods_ready_area"]   # one-second buckets: area = mean count
    starting = c["pods_starting_area"]
    assert list(ready[8:17]) == [1, 1, 1, 1, 1, 1, 1, 3, 3]
    assert list(starting[8:17]) == [0, 0, 2, 2, 2, 2, 2, 0, 0]
    assert events(world, "schedule") == [(10.0, "replicas set to 3 (from 1)")]


def test_warm_up_that_fails_halfway_closes_what_it_opened():
    # 5 usable slots; the running pod holds 3; the new pod opens 2 of its 3, the third is refused.
    world = World(scenario(
        LIFECYCLE, duration="20s", database={"max_connections": 10, "other_connections": 2},
        services={"api": {"pod": {"warm_connections": 3, "require_db_at_start": True, "startup": "10s",
                                  "schedule": [{"at": "5s", "replicas": 2}]}}}))
    world.run()
    assert events(world, "pod_crash") == [
        (15.03, "api-1 crashed: could not open its 3 connections at start (too_many_clients); restart in 0 s")]
    assert world.database.held == 3
    assert world.recorder.services["api"].connects[15] == 2 and world.recorder.services["api"].closes[15] == 2


#: push_spike's crash-loop variant (its description): pods that open all 10 connections before they are
#: ready and exit when one is refused, the article's "Each new pod tries to open 10 connections at startup".
CRASH_LOOP = ["services.api.pod.warm_connections=10", "services.api.pod.require_db_at_start=true"]


@pytest.fixture(scope="module")
def push_runs():
    runs = {}
    for label, overrides in {
        "12": CRASH_LOOP, "4": CRASH_LOOP + ["services.api.autoscaler.max_replicas=4"],
        "slow_start": CRASH_LOOP + ["services.api.pod.startup=60s"],
    }.items():
        runs[label] = simulate(load_scenario(PUSH_SPIKE, overrides))
    return runs


def test_push_spike_tells_the_cascade_in_order(push_runs):
    result = push_runs["12"]
    first = {}
    for e in result.events:
        first.setdefault(e.kind, e.time)
    assert first["phase_start"] < first["scale_up"] < first["first_refused_connect"] <= first["pod_crash"]
    assert result.summary["database"]["refused_connects"] > 0
    assert result.summary["services"]["api"]["crashes"] > 0
    assert result.summary["services"]["api"]["pods_max"] == 12
    # the pool was waiting when the pods crashed
    assert result.summary["services"]["api"]["peak_pool_waiting"] > 0


def test_a_higher_max_replicas_means_more_refused_connects(push_runs):
    assert push_runs["4"].summary["database"]["refused_connects"] == 0
    assert push_runs["4"].summary["services"]["api"]["crashes"] == 0
    assert push_runs["12"].summary["database"]["refused_connects"] > 0


def test_a_longer_startup_delays_the_first_scale_up_effect(push_runs):
    def first_new_pod_ready(result):
        return min(e.time for e in result.events if e.kind == "pod_ready")
    assert first_new_pod_ready(push_runs["slow_start"]) == pytest.approx(first_new_pod_ready(push_runs["12"]) + 30)
