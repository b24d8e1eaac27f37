"""Outcome classification, per-phase p99, totals and the alerts, on synthetic runs."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from synthetic_run import build, fake_scenario, leak, spiral

from spiralsim.analysis.alerts import (
    ALERTS,
    alert_events,
    alert_meanings,
    episodes,
    evaluate_alerts,
)
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


def test_recovered_before_the_trigger_ended_is_negative():
    result = build(fake_scenario(incidents=[(120, 300)]), spiral(120, 200))
    assert (result.summary["outcome"], result.summary["recovery_s"]) == ("recovered", -100.0)


def test_failure_share_alone_degrades_a_bucket():
    def failing(t):
        return {"ok": 95, "fail": 5} if 100 <= t < 110 else {}
    s = build(fake_scenario(incidents=[(100, 110)]), failing).summary
    assert s["degraded_buckets"] == 10
    assert s["outcome"] == "recovered" and s["recovery_s"] == 0.0


def test_metastable_when_still_degraded_long_after_every_trigger_with_no_fault_within_capacity():
    s = build(fake_scenario(incidents=[(120, 180)]), spiral(120, 600)).summary
    assert s["outcome"] == "metastable"
    assert s["recovery_s"] is None and "`api`" in s["outcome_reason"]


def test_metastable_needs_no_trigger():
    """A burst tipped a system whose first attempts fit: what keeps it down is its own."""
    assert build(fake_scenario(), spiral(100, 600)).summary["outcome"] == "metastable"


def test_overloaded_when_the_first_attempts_alone_exceed_capacity():
    s = build(fake_scenario(pod={"cpu_per_request": "100ms"}), spiral(100, 600)).summary
    assert s["outcome"] == "overloaded"
    assert s["outcome_reason"] == "`api` is offered 100 req/s and can serve about 20 (pod CPU)"


def test_stuck_when_a_fault_is_still_in_place():
    s = build(fake_scenario(duration=14400.0), leak(10800.0)).summary
    assert s["outcome"] == "stuck"
    assert s["outcome_reason"] == "`api`'s pools still hold 10 leaked connections, 10 of them dead"


@pytest.mark.parametrize("trigger_end, degraded_until", [(560, 600), (570, 580)])
def test_inconclusive_when_the_run_ends_too_soon_after_the_trigger(trigger_end, degraded_until):
    s = build(fake_scenario(incidents=[(120, trigger_end)]), spiral(120, degraded_until)).summary
    assert s["outcome"] == "inconclusive"
    assert s["recovery_s"] is None


def test_a_run_still_down_needs_its_last_settle_seconds_degraded_as_a_whole():
    # healthy for only the last 50 s (settle 60 s), the trigger long over
    assert build(fake_scenario(incidents=[(100, 200)]), spiral(100, 550)).summary["outcome"] == "metastable"

    def mild(t):
        return {"ok": 95, "fail": 5} if 100 <= t < 550 else {}
    assert build(fake_scenario(incidents=[(100, 200)]), mild).summary["outcome"] == "inconclusive"


def test_traffic_phases_above_the_base_rate_are_triggers():
    sc = fake_scenario(phases=[(100, 200, 800.0), (300, 400, 50.0)])
    s = build(sc, spiral(100, 150)).summary
    assert s["triggers"] == [{"kind": "traffic", "service": "api", "start": 100.0, "end": 200.0,
                              "detail": "rate 100 -> 800 req/s"}]
    assert s["outcome"] == "recovered" and s["recovery_s"] == -50.0  # healthy 50 s before the phase ended


def test_totals_phases_and_json():
    s = build(fake_scenario(incidents=[(120, 180)]), spiral(120, 250)).summary
    api = s["services"]["api"]
    assert set(api["failures"]) == {k.name for k in FAILURE_KINDS}
    assert api["requests"] == api["successes"] + api["failures_total"] + api["in_flight"]
    assert api["failures_total"] == 130 * 50
    assert api["amplification"] == 1.0
    assert api["p99_ms"]["before"] < 10 and 2500 < api["p99_ms"]["during"] < 3500
    assert api["p99_ms"]["after"] < 10  # measured once settled (at 250 s), not while the backlog drains
    assert api["impact"] == {"start_s": 120.0, "end_s": 250.0, "degraded_s": 130.0, "failed": 6500, "slow": 6500,
                             # 13,000 bad requests against 0.1 % of 30 days at this run's 100 req/s
                             "budget_share": round(13000 / (0.001 * 60000 * 2592000 / 600), 4),
                             "settled_s": 250.0,
                             # pool_waiting: pending at 121 s, firing at 131 s, 11 s after the impact began
                             "detected_s": 11.0, "detected_by": "pool_waiting"}
    assert s["settled_s"] == 250.0
    assert api["latency_ms"]["mean"] == pytest.approx(1000 * (470 * 100 * 0.005 + 130 * 100 * 3.0) / 60000, abs=0.1)
    assert api["peak_pool_waiting"] == 30 and api["pods_max"] == 2
    assert s["database"]["max_connections"] == 100
    json.dumps(s, allow_nan=False)


def test_no_trigger_means_no_phase_p99():
    s = build(fake_scenario()).summary
    assert s["services"]["api"]["p99_ms"] == {"before": None, "during": None, "after": None}


# ---------------------------------------------------------------- alerts


def _series(n=600, **cols):
    base = {"service": np.array(["api"] * n, dtype=object), "pool_in_use": np.full(n, 3.0),
            "pods_ready": np.full(n, 2.0), "arrivals": np.full(n, 100.0),
            "pool_waiting_sampled": np.zeros(n), "db_connections_max": np.full(n, 10.0),
            "db_oldest_idle_in_transaction_s": np.zeros(n), "statement_p99_ms": np.full(n, 5.0),
            "failures": np.zeros(n), "successes": np.full(n, 100.0)}
    for key, (lo, hi, value) in cols.items():
        base[key] = base[key].copy()
        base[key][lo:hi] = value
    return base


def _pod(n=600, lo=0, hi=600, value=0.0):
    """One pod's connections checked out at each scrape: `value` on [lo, hi), 0 elsewhere."""
    pod = np.zeros((1, n))
    pod[0, lo:hi] = value
    return {"api": pod}


def _alerts(series, settings=None, pods=None, pool_max=10):
    analysis = AnalysisConfig(**settings) if settings is not None else AnalysisConfig()
    return [(a["name"], a["service"], a["fired_at"], a["resolved_at"])
            for a in evaluate_alerts(series, 1.0, {"api": pool_max}, 100, analysis, pods)]


def test_healthy_series_fires_no_alert():
    assert _alerts(_series()) == []


def test_pool_waiting_is_pending_then_fires_when_held_at_every_scrape_for_10_s():
    # true at the scrapes ending buckets 100..129: pending at 101, firing at 111, resolved at 131
    assert _alerts(_series(pool_waiting_sampled=(100, 130, 3))) == [("pool_waiting", "api", 111.0, 131.0)]
    assert _alerts(_series(pool_waiting_sampled=(100, 110, 3))) == []  # gone at the scrape it would fire
    assert _alerts(_series(pool_waiting_sampled=(100, 111, 3))) == [("pool_waiting", "api", 111.0, 112.0)]


def test_pool_saturation_reads_connections_in_use_over_the_ready_pods_pools():
    assert _alerts(_series(pool_in_use=(200, 260, 17))) == [("pool_saturation", "api", 231.0, 261.0)]
    assert _alerts(_series(pool_in_use=(200, 260, 16))) == []  # exactly 80 %
    assert _alerts(_series(pool_in_use=(200, 260, 17), pods_ready=(200, 260, 0))) == []  # no ready pod, no pool to fill


def test_pool_collapse_fires_when_a_pod_never_gets_its_connections_back():
    window = {"pool_collapse_window": 100.0}
    # 9 of 10 checked out on one pod from 300 s: the floor over 100 s reaches 8 at 399 s, held 60 s
    assert _alerts(_series(), window, _pod(lo=300, value=9)) == [("pool_collapse", "api", 460.0, None)]
    assert _alerts(_series(arrivals=(300, 600, 0)), window, _pod(lo=300, value=9)) == []  # no traffic: no leak
    assert _alerts(_series(), window, _pod(lo=300, value=7)) == []  # 3 of 10 still free
    assert _alerts(_series(), None, _pod(lo=300, value=9)) == []  # not yet 10 minutes of it


def test_database_alerts_have_no_service():
    s = _series(db_connections_max=(50, 70, 85), db_oldest_idle_in_transaction_s=(10, 25, 40))
    assert _alerts(s) == [("idle_in_transaction", "", 21.0, 26.0), ("db_connections_high", "", 61.0, 71.0)]
    assert _alerts(_series(db_connections_max=(50, 70, 80))) == []
    assert _alerts(_series(db_oldest_idle_in_transaction_s=(10, 25, 30))) == []  # not older than 30 s


def test_alert_events_pair_firing_and_resolved():
    alerts = [{"name": "pool_waiting", "service": "api", "fired_at": 110.0, "resolved_at": 130.0},
              {"name": "pool_collapse", "service": "api", "fired_at": 360.0, "resolved_at": None}]
    assert [(e.time, e.kind, e.detail) for e in alert_events(alerts)] == [
        (110.0, "alert_firing", "pool_waiting"), (130.0, "alert_resolved", "pool_waiting"),
        (360.0, "alert_firing", "pool_collapse")]


def test_episodes_with_coarse_buckets():
    # scrapes at 5, 10, ... s: true at 10, 15, 20 s; pending from 10 s, held 10 s at 20 s, false at 25 s
    assert episodes(np.array([0, 1, 1, 1, 0, 1], dtype=bool), 5.0, 10.0) == [(20.0, 25.0)]


@given(st.lists(st.booleans(), max_size=60), st.sampled_from([0.5, 1.0, 10.0]), st.sampled_from([0.0, 1.0, 10.0, 30.0]))
def test_no_firing_lasts_zero_time(condition, bucket, sustain):
    for fired, resolved in episodes(np.array(condition, dtype=bool), bucket, sustain):
        assert resolved is None or resolved >= fired + bucket - 1e-9


def test_alerts_reach_the_event_log():
    result = build(fake_scenario(incidents=[(120, 180)]), spiral(120, 250))
    kinds = [(e.kind, e.detail) for e in result.events]
    assert ("alert_firing", "pool_waiting") in kinds and ("alert_resolved", "pool_waiting") in kinds
    times = [e.time for e in result.events]
    assert times == sorted(times)


# ---------------------------------------------------------------- configurable alerts, lead, totals


NON_DEFAULT = {"pool_waiting_for": 5.0, "pool_saturation_share": 0.5, "pool_saturation_for": 10.0,
               "pool_collapse_share": 0.5, "pool_collapse_window": 100.0, "pool_collapse_for": 20.0,
               "db_connections_share": 0.5, "db_connections_for": 5.0, "idle_in_transaction_for": 3.0,
               "statement_p99_budget": 0.1, "statement_budget_for": 30.0,
               "error_rate_threshold": 0.1, "error_rate_for": 20.0}


@pytest.mark.parametrize("cols, pod, expected, default", [
    ({"pool_waiting_sampled": (100, 130, 3)}, 0, ("pool_waiting", "api", 106.0, 131.0),
     ("pool_waiting", "api", 111.0, 131.0)),
    ({"pool_in_use": (200, 260, 11)}, 0, ("pool_saturation", "api", 211.0, 261.0), None),
    ({}, 6, ("pool_collapse", "api", 420.0, None), None),
    ({"db_connections_max": (50, 70, 55)}, 0, ("db_connections_high", "", 56.0, 71.0), None),
    ({"db_oldest_idle_in_transaction_s": (10, 25, 40)}, 0, ("idle_in_transaction", "", 14.0, 26.0),
     ("idle_in_transaction", "", 21.0, 26.0)),
    # statements' p99 of 150 ms from 100 s to 200 s: above a budget of 100 ms, not the default 200 ms
    ({"statement_p99_ms": (100, 200, 150.0)}, 0, ("slow_query_budget", "api", 131.0, 201.0), None),
    # 5 of 100 failing from 300 s to 400 s: above the default 1 %, not above 10 %; 20 of 100 above both
    ({"failures": (300, 400, 20.0), "successes": (300, 400, 80.0)}, 0, ("error_rate", "api", 321.0, 401.0),
     ("error_rate", "api", 361.0, 401.0)),
])
def test_each_alert_follows_its_analysis_settings(cols, pod, expected, default):
    series, pods = _series(**cols), _pod(lo=300, value=pod)
    assert _alerts(series, NON_DEFAULT, pods) == [expected]
    assert _alerts(series, None, pods) == ([default] if default else [])


def test_slow_query_budget_fires_on_the_statements_p99_and_a_bucket_without_statements_breaks_it():
    series = _series(statement_p99_ms=(100, 200, 500.0))
    assert _alerts(series) == [("slow_query_budget", "api", 161.0, 201.0)]  # held 60 s from the scrape at 101
    series["statement_p99_ms"][150] = np.nan  # no statement ended in that bucket: not above (as PromQL's NaN)
    assert _alerts(series) == []  # 50 then 49 scrapes above: neither holds 60 s


def test_error_rate_fires_on_failed_requests_over_ended_ones_held_a_minute_and_resolves():
    # 2 of 100 requests failing at the scrapes ending 100..199 s: pending at 101, firing at 161, resolved at 201
    series = _series(failures=(100, 200, 2.0), successes=(100, 200, 98.0))
    assert _alerts(series) == [("error_rate", "api", 161.0, 201.0)]
    assert _alerts(_series(failures=(100, 200, 1.0), successes=(100, 200, 99.0))) == []  # exactly 1 %: not above
    assert _alerts(_series(failures=(100, 200, 1.0), successes=(100, 200, 199.0))) == []  # 0.5 %: below
    assert _alerts(_series(failures=(100, 159, 2.0), successes=(100, 159, 98.0))) == []  # 59 s: not held
    quiet = _series(failures=(100, 200, 2.0), successes=(100, 200, 98.0))
    quiet["failures"][150] = quiet["successes"][150] = 0.0  # nothing ended in that bucket: not above
    assert _alerts(quiet) == []  # 50 then 49 scrapes above: neither holds 60 s


def test_error_rate_alert_on_a_synthetic_run_reaches_the_summary_and_the_events():
    def failing(t: float) -> dict:
        return {"ok": 95, "fail": 5} if 120 <= t < 300 else {}
    result = build(fake_scenario(), failing)
    fired = [(a["name"], a["service"], a["fired_at"], a["resolved_at"]) for a in result.summary["alerts"]]
    assert fired == [("error_rate", "api", 181.0, 301.0)]  # 5 % from the scrape at 121, held 60 s
    kinds = [(e.time, e.kind, e.detail) for e in result.events if e.kind.startswith("alert")]
    assert kinds == [(181.0, "alert_firing", "error_rate"), (301.0, "alert_resolved", "error_rate")]
    assert build(fake_scenario(), lambda t: {"ok": 995, "fail": 5}).summary["alerts"] == []  # 0.5 %: below 1 %


def test_non_default_settings_fire_nothing_on_a_healthy_series():
    assert _alerts(_series(), NON_DEFAULT, _pod()) == []


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
    assert fired == [125.0]


def test_lead_s_is_how_long_before_the_impact_an_alert_fired():
    s = build(fake_scenario(duration=14400.0), leak(10800.0)).summary
    by_name = {a["name"]: a for a in s["alerts"]}
    # the idle-in-transaction session is older than 30 s at the scrape ending 3,630 s, held 10 s
    assert by_name["idle_in_transaction"]["fired_at"] == 3641.0
    assert by_name["idle_in_transaction"]["lead_s"] == 10800.0 - 3641.0
    # 10 of 10 checked out from 1 h: the 10-minute floor reaches 8 at 4,199 s, held 60 s
    assert by_name["pool_collapse"]["fired_at"] == 4260.0
    assert by_name["pool_collapse"]["lead_s"] == 10800.0 - 4260.0
    assert by_name["pool_waiting"]["fired_at"] == 10811.0 and by_name["pool_waiting"]["lead_s"] is None
    assert all("lead_s" in a for a in s["alerts"])
    assert all(a["lead_s"] is None for a in build(fake_scenario(), spiral(0, 0)).summary["alerts"])


def test_an_alert_already_firing_before_the_trigger_is_no_warning():
    def early_queue(t):
        return {"waiting": 5} if 50 <= t < 310 else spiral(310, 500)(t)
    s = build(fake_scenario(incidents=[(300, 400)]), early_queue).summary
    waiting = [a for a in s["alerts"] if a["name"] == "pool_waiting"]
    assert waiting[0]["fired_at"] == 61.0 and waiting[0]["lead_s"] is None  # the impact began at 310 s


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
