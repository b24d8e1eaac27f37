"""Outcome classification, per-phase p99, totals and the five alerts, on synthetic runs."""
from __future__ import annotations

import json

import numpy as np
import pytest
from synthetic_run import build, fake_scenario, leak, spiral

from spiralsim.analysis import classify
from spiralsim.analysis.alerts import ALERTS, alert_events, alert_meanings, episodes, evaluate_alerts, trailing_max
from spiralsim.scenario import AnalysisConfig
from spiralsim.vocabulary import FAILURE_KINDS


def test_stable_when_no_bucket_is_degraded():
    result = build(fake_scenario(incidents=[(120, 180)]))
    s = result.summary
    assert s["outcome"] == "stable"
    assert s["recovery_s"] is None
    assert s["degraded_buckets"] == 0
    assert s["alerts"] == []


def test_recovered_measures_from_the_last_trigger_end_to_the_healthy_stretch():
    result = build(fake_scenario(incidents=[(120, 180)]), spiral(120, 250))
    s = result.summary
    assert s["outcome"] == "recovered"
    assert s["recovery_s"] == 70.0
    assert s["degraded_buckets"] == 130


def test_recovered_at_once_when_the_trigger_ends_healthy():
    result = build(fake_scenario(incidents=[(120, 300)]), spiral(120, 200))
    assert (result.summary["outcome"], result.summary["recovery_s"]) == ("recovered", 0.0)


def test_failure_share_alone_degrades_a_bucket():
    def failing(t):
        return {"ok": 95, "fail": 5} if 100 <= t < 110 else {}
    s = build(fake_scenario(incidents=[(100, 110)]), failing).summary
    assert s["degraded_buckets"] == 10
    assert s["outcome"] == "recovered" and s["recovery_s"] == 0.0


def test_metastable_when_still_degraded_long_after_every_trigger():
    s = build(fake_scenario(incidents=[(120, 180)]), spiral(120, 600)).summary
    assert s["outcome"] == "metastable"
    assert s["recovery_s"] is None


@pytest.mark.parametrize("trigger_end, degraded_until", [(560, 600), (570, 580)])
def test_inconclusive_when_the_run_ends_too_soon_after_the_trigger(trigger_end, degraded_until):
    s = build(fake_scenario(incidents=[(120, trigger_end)]), spiral(120, degraded_until)).summary
    assert s["outcome"] == "inconclusive"
    assert s["recovery_s"] is None


def test_classify_needs_a_degraded_tail_for_metastable():
    degraded = np.zeros(600, dtype=bool)
    degraded[100:550] = True  # healthy for only 50 s at the end, trigger ended at 200
    assert classify(degraded, 1.0, 600.0, 200.0, 60.0, tail_degraded=True) == ("metastable", None)
    assert classify(degraded, 1.0, 600.0, 200.0, 60.0, tail_degraded=False) == ("inconclusive", None)


def test_traffic_phases_above_the_base_rate_are_triggers():
    sc = fake_scenario(phases=[(100, 200, 800.0), (300, 400, 50.0)])
    s = build(sc, spiral(100, 150)).summary
    assert s["triggers"] == [{"kind": "traffic", "service": "api", "start": 100.0, "end": 200.0,
                              "detail": "rate 100 -> 800 req/s"}]
    assert s["outcome"] == "recovered" and s["recovery_s"] == 0.0


def test_totals_phases_and_json():
    s = build(fake_scenario(incidents=[(120, 180)]), spiral(120, 250)).summary
    api = s["services"]["api"]
    assert set(api["failures"]) == {k.name for k in FAILURE_KINDS}
    assert api["requests"] == api["successes"] + api["failures_total"] + api["in_flight"]
    assert api["failures_total"] == 130 * 50
    assert api["amplification"] == 1.0
    assert api["p99_ms"]["before"] < 10 and 2500 < api["p99_ms"]["during"] < 3500
    assert api["p99_ms"]["after"] > 2500  # the degraded tail after the trigger
    assert api["latency_ms"]["mean"] == pytest.approx(1000 * (470 * 100 * 0.005 + 130 * 100 * 3.0) / 60000, abs=0.1)
    assert api["peak_pool_waiting"] == 30 and api["pods_max"] == 2
    assert s["database"]["max_connections"] == 100
    json.dumps(s, allow_nan=False)


def test_no_trigger_means_no_phase_p99():
    s = build(fake_scenario()).summary
    assert s["services"]["api"]["p99_ms"] == {"before": None, "during": None, "after": None}


# ---------------------------------------------------------------- alerts


def _series(n=600, **cols):
    base = {"service": np.array(["api"] * n, dtype=object), "pool_total": np.full(n, 4.0),
            "pool_total_max": np.full(n, 5.0), "pods_ready": np.full(n, 2.0), "arrivals": np.full(n, 100.0),
            "pool_waiting_max": np.zeros(n), "pool_waiting_sampled": np.zeros(n), "db_connections_max": np.full(n, 10.0),
            "db_idle_in_transaction": np.zeros(n), "db_idle_in_transaction_sampled": np.zeros(n)}
    for key, (lo, hi, value) in cols.items():
        base[key] = base[key].copy()
        base[key][lo:hi] = value
    return base


def _alerts(series, pool_max=10):
    return [(a["name"], a["service"], a["fired_at"], a["resolved_at"])
            for a in evaluate_alerts(series, 1.0, {"api": pool_max}, 100)]


def test_healthy_series_fires_no_alert():
    assert _alerts(_series()) == []


def test_pool_waiting_fires_after_10_s_and_resolves_when_zero():
    assert _alerts(_series(pool_waiting_sampled=(100, 130, 3))) == [("pool_waiting", "api", 110.0, 130.0)]
    assert _alerts(_series(pool_waiting_sampled=(100, 109, 3))) == []


def test_pool_saturation_fires_after_30_s_above_80_percent():
    assert _alerts(_series(pool_total=(200, 260, 17))) == [("pool_saturation", "api", 230.0, 260.0)]
    assert _alerts(_series(pool_total=(200, 260, 16))) == []  # exactly 80 %


def test_pool_collapse_fires_when_the_pool_empties_under_traffic():
    s = _series(pool_total=(300, 600, 0.5), pool_total_max=(300, 600, 1))
    assert _alerts(s) == [("pool_collapse", "api", 360.0, None)]
    assert _alerts(_series(pool_total=(300, 600, 0.5), pool_total_max=(300, 600, 1), arrivals=(300, 600, 0))) == []
    tiny = _series(pool_total=(0, 600, 0.1), pool_total_max=(0, 600, 1.0))
    assert _alerts(tiny) == []  # trailing max below 2: not evaluated


def test_database_alerts_have_no_service():
    s = _series(db_connections_max=(50, 70, 85), db_idle_in_transaction_sampled=(10, 25, 1))
    assert _alerts(s) == [("idle_in_transaction", "", 20.0, 25.0), ("db_connections_high", "", 60.0, 70.0)]
    assert _alerts(_series(db_connections_max=(50, 70, 80))) == []


def test_alert_events_pair_firing_and_resolved():
    alerts = [{"name": "pool_waiting", "service": "api", "fired_at": 110.0, "resolved_at": 130.0},
              {"name": "pool_collapse", "service": "api", "fired_at": 360.0, "resolved_at": None}]
    assert [(e.time, e.kind, e.detail) for e in alert_events(alerts)] == [
        (110.0, "alert_firing", "pool_waiting"), (130.0, "alert_resolved", "pool_waiting"),
        (360.0, "alert_firing", "pool_collapse")]


def test_episodes_and_trailing_max_with_coarse_buckets():
    assert episodes(np.array([0, 1, 1, 1, 0, 1], dtype=bool), 5.0, 10.0) == [(15.0, 20.0)]
    assert trailing_max(np.array([1.0, 3.0, 2.0, 0.0, 0.0]), 2).tolist() == [1.0, 3.0, 3.0, 2.0, 0.0]


def test_alerts_reach_the_event_log():
    result = build(fake_scenario(incidents=[(120, 180)]), spiral(120, 250))
    kinds = [(e.kind, e.detail) for e in result.events]
    assert ("alert_firing", "pool_waiting") in kinds and ("alert_resolved", "pool_waiting") in kinds
    times = [e.time for e in result.events]
    assert times == sorted(times)


# ---------------------------------------------------------------- configurable alerts, lead, totals


NON_DEFAULT = {"pool_waiting_for": 5.0, "pool_saturation_share": 0.5, "pool_saturation_for": 10.0,
               "pool_collapse_share": 0.5, "pool_collapse_window": 100.0, "pool_collapse_for": 20.0,
               "db_connections_share": 0.5, "db_connections_for": 5.0, "idle_in_transaction_for": 3.0}


def _alerts_with(series, settings, pool_max=10):
    analysis = AnalysisConfig(**settings) if settings is not None else AnalysisConfig()
    return [(a["name"], a["service"], a["fired_at"], a["resolved_at"])
            for a in evaluate_alerts(series, 1.0, {"api": pool_max}, 100, analysis)]


@pytest.mark.parametrize("cols, expected, default", [
    ({"pool_waiting_sampled": (100, 130, 3)}, ("pool_waiting", "api", 105.0, 130.0), ("pool_waiting", "api", 110.0, 130.0)),
    ({"pool_total": (200, 260, 11)}, ("pool_saturation", "api", 210.0, 260.0), None),
    ({"pool_total": (300, 600, 1.5), "pool_total_max": (300, 600, 2)}, ("pool_collapse", "api", 320.0, 399.0), None),
    ({"db_connections_max": (50, 70, 55)}, ("db_connections_high", "", 55.0, 70.0), None),
    ({"db_idle_in_transaction_sampled": (10, 25, 1)}, ("idle_in_transaction", "", 13.0, 25.0),
     ("idle_in_transaction", "", 20.0, 25.0)),
])
def test_each_alert_follows_its_analysis_settings(cols, expected, default):
    series = _series(**cols)
    assert _alerts_with(series, NON_DEFAULT) == [expected]
    assert _alerts_with(series, None) == ([default] if default else [])


def test_non_default_settings_fire_nothing_on_a_healthy_series():
    assert _alerts_with(_series(), NON_DEFAULT) == []


def test_every_alert_reads_its_settings_from_the_analysis_table():
    fields = AnalysisConfig.model_fields
    for alert in ALERTS:
        assert alert.sustain in fields, alert.name
    assert AnalysisConfig().pool_saturation_share == 0.8  # the article's value is the default
    assert "for 3 s" in alert_meanings(AnalysisConfig(pool_waiting_for=3.0))["pool_waiting"]
    assert set(alert_meanings()) == {a.name for a in ALERTS}


def test_summary_uses_the_scenario_alert_settings():
    sc = fake_scenario(incidents=[(120, 180)], pool_waiting_for=4.0)
    fired = [a["fired_at"] for a in build(sc, spiral(120, 250)).summary["alerts"] if a["name"] == "pool_waiting"]
    assert fired == [124.0]


def test_lead_s_is_how_long_before_the_outage_an_alert_fired():
    s = build(fake_scenario(duration=14400.0), leak(10800.0)).summary
    by_name = {a["name"]: a for a in s["alerts"]}
    assert by_name["pool_collapse"]["fired_at"] == 3660.0
    assert by_name["pool_collapse"]["lead_s"] == 10800.0 - 3660.0
    assert by_name["pool_waiting"]["fired_at"] == 10810.0 and by_name["pool_waiting"]["lead_s"] is None
    assert all("lead_s" in a for a in s["alerts"])
    assert all(a["lead_s"] is None for a in build(fake_scenario(), spiral(0, 0)).summary["alerts"])


def test_trouble_totals_in_the_summary():
    s = build(fake_scenario(duration=14400.0), leak(10800.0)).summary
    api = s["services"]["api"]
    assert api["leaked"] == 72  # one per 100 s from 1 h to 3 h
    assert api["orphaned"] == 7 and api["lost_writes"] == 14
    assert api["lock_waits"] == 14 and api["lock_wait_ms"] == {"mean": 250.0}
    assert api["peak_pool_dead"] == 10
    assert (api["foreign_statements"], api["sessions_killed"], api["terminated"]) == (0, 0, 0)
    assert s["database"]["peak_idle_in_transaction"] == 1
    json.dumps(s, allow_nan=False)
    calm = build(fake_scenario()).summary
    assert calm["services"]["api"]["leaked"] == 0 and calm["services"]["api"]["lock_wait_ms"] == {"mean": None}
    assert calm["database"]["peak_idle_in_transaction"] == 0
