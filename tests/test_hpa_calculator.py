"""The Kubernetes replica calculator by metric type (replica_calculator.go): the doc's
examples, missing metrics (the target on a scale-down, 0 on a scale-up; cpu at
max(100 %, target)), Object metrics times the ready pods, a failed sync remembers
nothing; and `pool_utilization` driving a scale-up in a run."""
from __future__ import annotations

import pytest
from builders import LIFECYCLE, scenario

from spiralsim import simulate
from spiralsim.model.hpa import Hpa, Observation
from spiralsim.model.world import World
from spiralsim.scenario import AutoscalerConfig


def hpa(**kw) -> Hpa:
    kw.setdefault("max_replicas", 20)
    return Hpa(AutoscalerConfig(**kw))


def test_the_docs_example_doubles_and_halves():
    # k8s-hpa: "if the current metric value is 200m, and the desired value is 100m, the number of replicas
    # will be doubled ... If the current value is instead 50m, you'll halve the number of replicas"
    assert hpa(signal="inflight", target=0.1).decide(0.0, Observation(4, 0.2, 4)).desired == 8
    d = hpa(signal="inflight", target=0.1, scale_down_stabilization=0).decide(0.0, Observation(4, 0.05, 4))
    assert d.desired == 2


def test_missing_pods_count_at_the_target_on_a_scale_down():
    # inflight 1 per pod on 3 pods vs 2 (ratio 0.5), 1 missing at 2: (3 + 2) / 4 / 2 = 0.625; ceil(4 x 0.625) = 3
    # (without the rule: ceil(3 x 0.5) = 2)
    d = hpa(signal="inflight", target=2, scale_down_stabilization=0).decide(0.0, Observation(4, 1.0, 3, missing=1))
    assert (d.desired, d.ratio) == (3, 0.625)


def test_missing_pods_count_at_0_on_a_scale_up_and_can_cancel_it():
    # 3 per pod on 2 pods vs 2 (ratio 1.5), 2 missing at 0: 6 / 4 / 2 = 0.75: the direction changes -> keep 4
    d = hpa(signal="pool_waiting", target=2).decide(0.0, Observation(4, 3.0, 2, missing=2))
    assert (d.desired, d.ratio) == (4, 0.75)
    assert d.reason.startswith("pods without a metric cancel the change")


def test_a_missing_cpu_pod_counts_at_100_percent_of_its_request():
    # cpu 10 % on 2 pods vs 50 % (ratio 0.2), 2 missing at max(100 %, 50 %): (0.2 + 2) / 4 / 0.5 = 1.1:
    # the direction changes -> keep 4
    d = hpa(target=0.5, scale_down_stabilization=0).decide(0.0, Observation(4, 0.1, 2, missing=2))
    assert (d.desired, d.ratio) == (4, pytest.approx(1.1))
    # the same numbers as a Pods metric: missing at the target 0.5: (0.2 + 1) / 4 / 0.5 = 0.6; ceil(2.4) = 3
    d = hpa(signal="pool_utilization", target=0.5, scale_down_stabilization=0).decide(
        0.0, Observation(4, 0.1, 2, missing=2))
    assert (d.desired, d.ratio) == (3, pytest.approx(0.6))


def test_unready_and_missing_together_on_a_scale_up():
    # cpu 100 % on 2 pods vs 40 % (ratio 2.5), 1 unready and 1 missing, both at 0: 2 / 4 / 0.4 = 1.25 -> 5
    d = hpa(target=0.4).decide(0.0, Observation(4, 1.0, 2, not_ready=1, missing=1))
    assert (d.desired, d.ratio) == (5, 1.25)


def test_an_object_metric_multiplies_the_ready_pods():
    # p99 400 ms vs 200 ms (ratio 2) with 3 of 6 replicas ready: ceil(3 x 2) = 6 = N -> no change
    # (multiplying N would have asked for 12)
    d = hpa(signal="latency_p99", target="200ms").decide(0.0, Observation(6, 0.4, 3, not_ready=3))
    assert (d.desired, d.recommendation) == (6, 6)


def test_a_failed_sync_remembers_nothing():
    h = hpa(target=0.5)
    h.decide(0.0, Observation(10, None, 0, not_ready=10))    # the first sync remembers 10
    h.decide(15.0, Observation(10, None, 0, not_ready=10))   # no metric: nothing remembered
    # at 300 the 10 of t=0 has left the window: 0.1 / 0.5 x 10 = 2, nothing higher remembered -> 2
    assert h.decide(300.0, Observation(10, 0.1, 10)).desired == 2


POOL_BOUND = {
    "duration": "40s",
    "services": {"api": {
        "traffic": {"rate": 100, "arrivals": "deterministic"},
        "endpoints": {"q": {"statement_wait": "1s"}},
        "pod": {"replicas": 2, "warm_connections": 2},
        "pool": {"max": 2},
        "autoscaler": {"signal": "pool_utilization", "target": 0.5, "max_replicas": 10},
    }},
}


def test_pool_utilization_drives_a_scale_up():
    # 100 req/s of 1 s statements on 2 pods of 2 connections: every connection in use, 100 % per pod
    # vs 50 %: ratio 2, ceil(2 x 2) = 4 at the first decision (15 s)
    world = World(scenario(LIFECYCLE, **POOL_BOUND))
    world.run()
    first = next(e for e in world.recorder.events if e.kind in ("scale_up", "scale_hold", "scale_down"))
    # (the first 25 ms before the first arrivals hold no connection: 0.998)
    assert (first.kind, first.time, first.data.desired) == ("scale_up", 15.0, 4)
    assert first.data.value == pytest.approx(1.0, abs=0.002)
    assert "pool 100 % against a target of 50 %" in first.detail


def test_pool_utilization_column():
    result = simulate(scenario(LIFECYCLE, **POOL_BOUND))
    col = result.timeseries["pool_utilization"][result.timeseries["service"] == "api"]
    assert col[5:14] == pytest.approx(1.0)  # both pods' pools fully in use before the first scale-up
    assert 0.0 <= col.min() and col.max() <= 1.0
