"""An HPA on several metrics (kubernetes `horizontal.go`, `computeReplicasForMetrics`): each metric's
recommendation, the largest wins and the scale event names it; a metric without data is left out
unless the others would scale down; the `error_rate` signal, alone or beside cpu; the scenario's
`metrics` list and its errors."""
from __future__ import annotations

import pytest
import simpy
from builders import LIFECYCLE, scenario

from spiralsim.metrics import Recorder
from spiralsim.model.autoscaler import Autoscaler
from spiralsim.model.hpa import Hpa, Observation
from spiralsim.model.world import World
from spiralsim.scenario import AutoscalerConfig, ScenarioError
from spiralsim.vocabulary import KIND_INDEX, SIGNALS

CPU_AND_ERRORS = [{"signal": "cpu", "target": 0.7}, {"signal": "error_rate", "target": 0.05}]


def hpa(**kw) -> Hpa:
    kw.setdefault("max_replicas", 20)
    kw.setdefault("scale_down_stabilization", 0)
    return Hpa(AutoscalerConfig(**kw))


def test_the_largest_recommendation_wins_and_is_named():
    # cpu 70 % on 3 pods vs 70 %: within the tolerance, asks 3; errors 8 % vs 5 % (ratio 1.6): ceil(1.6 x 3) = 5
    d = hpa(metrics=CPU_AND_ERRORS).decide(0.0, Observation(3, 0.7, 3), Observation(3, 0.08, 3))
    assert (d.desired, d.metric, d.ratio) == (5, "error_rate", pytest.approx(1.6))
    assert [(p.signal, p.replicas) for p in d.proposals] == [("cpu", 3), ("error_rate", 5)]
    # cpu 100 % vs 70 %: ceil(3 / 0.7) = 5 beats the errors' 6 % vs 5 %: ceil(1.2 x 3) = 4
    d = hpa(metrics=CPU_AND_ERRORS).decide(0.0, Observation(3, 1.0, 3), Observation(3, 0.06, 3))
    assert (d.desired, d.metric) == (5, "cpu") and d.value == 1.0


def test_of_equal_recommendations_the_first_metric_wins():
    d = hpa(metrics=CPU_AND_ERRORS).decide(0.0, Observation(2, 1.4, 2), Observation(2, 0.1, 2))
    assert (d.desired, d.metric) == (4, "cpu")  # both ask ceil(2 x 2) = 4


def test_a_scale_down_needs_every_metric():
    # both low: the larger of 1 and 1 -> 1 (stabilization 0)
    d = hpa(metrics=CPU_AND_ERRORS).decide(0.0, Observation(4, 0.1, 4), Observation(4, 0.0, 4))
    assert (d.desired, d.metric) == (1, "cpu")
    # cpu has no data and the errors would scale down: the sync fails, nothing changes, nothing is remembered
    h = hpa(metrics=CPU_AND_ERRORS, scale_down_stabilization=300)
    d = h.decide(0.0, Observation(4, None, 0, missing=4), Observation(4, 0.0, 4))
    assert (d.desired, d.metric, d.reason) == (4, "", "no data for cpu: no scale-down")
    assert list(h.recommendations) == [(0.0, 4)]  # only the first sync's count
    # ... but a scale-up goes ahead on the metrics that have data
    d = hpa(metrics=CPU_AND_ERRORS).decide(0.0, Observation(4, None, 0, missing=4), Observation(4, 0.2, 4))
    assert (d.desired, d.metric) == (8, "error_rate")  # ratio 4: ceil(4 x 4) = 16, at most +100 % per 15 s
    # no metric at all: no data
    d = hpa(metrics=CPU_AND_ERRORS).decide(0.0, Observation(4, None, 0), Observation(4, None, 0))
    assert (d.desired, d.reason) == (4, "no data")


def test_error_rate_alone_is_an_object_metric_on_the_ready_pods():
    # 20 % failing vs 5 %: ratio 4 on the 2 ready pods of 3 replicas: ceil(4 x 2) = 8
    d = hpa(signal="error_rate", target=0.05).decide(0.0, Observation(3, 0.2, 2, not_ready=1))
    assert (d.desired, d.metric) == (7, "error_rate")  # 8, at most max(+100 %, +4) per 15 s from 3
    assert d.recommendation == 8
    # within the tolerance: no change
    assert hpa(signal="error_rate", target=0.05).decide(0.0, Observation(3, 0.054, 3)).desired == 3


def test_one_observation_per_metric():
    with pytest.raises(ValueError, match="expected 2 observations"):
        hpa(metrics=CPU_AND_ERRORS).decide(0.0, Observation(3, 0.7, 3))


class _Deployment:
    desired = 1

    def live_pods(self) -> list:
        return []

    def set_replicas(self, n: int) -> None:
        self.desired = n


def test_error_rate_reads_the_failed_attempts_over_those_answered():
    # buckets 0..1 of the 30 s window before 2 s (bucket 1 s, window 2 s): 2 failed requests, 3 retries
    # (each after a failed attempt), 5 successes: 5 failed of 10 answered. Bucket 2 (now) is not read.
    rec = Recorder(10.0, 1.0, ["api"], 100)
    series = rec.services["api"]
    config = AutoscalerConfig(signal="error_rate", target=0.05, max_replicas=4, window=2.0)
    scaler = Autoscaler(simpy.Environment(), config, _Deployment(), "api", series, rec)
    series.failures[KIND_INDEX["acquire_timeout"]][0] = 1
    series.failures[KIND_INDEX["client_timeout"]][1] = 1
    series.retries[1] = 3
    series.successes[0] = series.successes[1] = 2.5
    series.successes[2] = series.failures[0][2] = 100  # the bucket under way
    assert scaler._service_value(2.0, SIGNALS["error_rate"]) == 0.5
    assert scaler._service_value(9.0, SIGNALS["error_rate"]) is None  # nothing answered: no data


FAILING = {
    "duration": "20s",
    "services": {"api": {
        "traffic": {"rate": 100, "arrivals": "deterministic"},
        "endpoints": {"q": {"statement_wait": "1ms", "error_rate": 1.0}},  # every request fails
        "pod": {"replicas": 2},
    }},
}


def _first_decision(*sets: str):
    world = World(scenario(LIFECYCLE, *sets, **FAILING))
    world.run()
    return next(e for e in world.recorder.events if e.kind in ("scale_up", "scale_hold", "scale_down"))


def test_error_rate_drives_a_scale_up_in_a_run():
    first = _first_decision("services.api.autoscaler.signal=\"error_rate\"", "services.api.autoscaler.target=0.25",
                            "services.api.autoscaler.max_replicas=10")
    # all failing vs 25 %: ratio 4, ceil(4 x 2) = 8, at most +4 from 2 -> 6 at the first decision (15 s)
    assert (first.kind, first.time, first.data.desired, first.data.value) == ("scale_up", 15.0, 6, 1.0)
    assert first.detail.startswith("errors 100.0 % against a target of 25 %: 2 -> 6 pods (limited by the scale-up")


def test_with_cpu_and_error_rate_the_event_says_which_won():
    # cpu: no pod has been ready for a whole window yet (its initialization period): no data; the errors win
    first = _first_decision('services.api.autoscaler.metrics=[{signal="cpu", target=0.7},'
                            ' {signal="error_rate", target=0.25}]', "services.api.autoscaler.max_replicas=10")
    assert (first.kind, first.data.desired, first.data.metric) == ("scale_up", 6, "error_rate")
    assert first.detail.startswith("error_rate wins: cpu: no data; errors 100.0 % against 25 % asks 8: 2 -> 6 pods")


BASE = {"duration": "10s", "services": {"api": {"traffic": {"rate": 10}, "endpoints": {"q": {}}}}}


def errors(autoscaler: dict) -> list[str]:
    with pytest.raises(ScenarioError) as exc:
        scenario(BASE, services={"api": {"autoscaler": {"max_replicas": 4, **autoscaler}}})
    return list(exc.value.errors)


def test_metrics_is_a_list_of_signals_and_targets():
    s = scenario(BASE, services={"api": {"autoscaler": {"max_replicas": 4, "metrics": [
        {"signal": "latency_p99", "target": "200ms"}, {"signal": "error_rate", "target": 0.05}]}}})
    auto = s.services["api"].autoscaler
    assert [(m.signal, m.target) for m in auto.specs] == [("latency_p99", 0.2), ("error_rate", 0.05)]
    assert auto.signal is None and auto.target is None
    single = scenario(BASE, services={"api": {"autoscaler": {"max_replicas": 4, "target": 0.7}}})
    assert [(m.signal, m.target) for m in single.services["api"].autoscaler.specs] == [("cpu", 0.7)]


@pytest.mark.parametrize("autoscaler, expected", [
    ({"signal": "cpu", "target": 0.7, "metrics": CPU_AND_ERRORS},
     ["services.api.autoscaler.metrics: contradictory settings: one metric is signal and target, several are "
      "metrics; remove services.api.autoscaler.signal and services.api.autoscaler.target "
      "(or services.api.autoscaler.metrics)"]),
    ({"target": 0.7, "metrics": CPU_AND_ERRORS},
     ["services.api.autoscaler.metrics: contradictory settings: one metric is signal and target, several are "
      "metrics; remove services.api.autoscaler.target (or services.api.autoscaler.metrics)"]),
    ({}, ["services.api.autoscaler.target: required key is missing "
          "(or list several metrics as services.api.autoscaler.metrics)"]),
    ({"metrics": []}, ["services.api.autoscaler.metrics: must have at least 1 entry"]),
    ({"metrics": [{"signal": "cpu", "target": 0.7}, {"signal": "cpu", "target": 0.5}]},
     ["services.api.autoscaler.metrics: each signal at most once; given more than once: cpu"]),
    ({"metrics": [{"target": 0.5}, {"signal": "latency_p99", "target": "2 sec"}, {"signal": "error_rate"}]},
     ["services.api.autoscaler.metrics[0].signal: required key is missing",
      "services.api.autoscaler.metrics[1].target: bad duration '2 sec' (use a unit: us, ms, s, m, h)",
      "services.api.autoscaler.metrics[2].target: required key is missing"]),
])
def test_metrics_errors_one_line_each(autoscaler, expected):
    assert errors(autoscaler) == expected
