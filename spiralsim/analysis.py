"""What a run means: totals, p99 per phase, the outcome, the alerts (summary.json).

Reads the recording and the time series after the run; never touches the model.
Times are simulated seconds; latencies in the summary are milliseconds.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from .alerts import alert_events, alert_settings, evaluate_alerts
from .metrics import FAILURE_KINDS, Event, Recording
from .timeseries import hist_percentiles

__all__ = [
    "summarize", "triggers", "degraded_buckets", "classify", "service_column",
    "run_events", "alert_events", "first_degraded_s", "TROUBLE_COUNTS",
]

#: Per-service counters of what the database saw go wrong, totalled in summary.json.
TROUBLE_COUNTS = ("leaked", "orphaned", "foreign_statements", "lost_writes", "lock_waits",
                  "sessions_killed", "terminated")


def service_column(series: dict[str, np.ndarray], key: str, service: str) -> np.ndarray:
    """One service's rows of a time-series column, in time order."""
    return series[key][series["service"] == service]


def _ms(seconds: Optional[float]) -> Optional[float]:
    if seconds is None or not math.isfinite(seconds):
        return None
    return round(1000.0 * seconds, 1)


def _count(x: float) -> int:
    return int(round(float(x)))


# ---------------------------------------------------------------- triggers


def triggers(scenario: Any) -> list[dict[str, Any]]:
    """The incidents' windows and the traffic phases above their service's base rate, by start.

    Each is `{kind, service, start, end, detail}`; an incident on every service has service "".
    """
    found = []
    for inc in scenario.incidents:
        detail = f"x{inc.factor:g}" if getattr(inc, "factor", None) is not None else ""
        endpoints = getattr(inc, "endpoints", None)
        if endpoints:
            detail += f" on {', '.join(endpoints)}"
        services = getattr(inc, "services", None)
        found.append({"kind": inc.kind, "service": ",".join(services) if services else "",
                      "start": float(inc.start), "end": float(inc.end), "detail": detail.strip()})
    for name, svc in scenario.services.items():
        base = svc.traffic.rate
        for ph in svc.traffic.phases:
            if ph.rate > base:
                ramp = " (ramp)" if getattr(ph, "ramp", False) else ""
                found.append({"kind": "traffic", "service": name, "start": float(ph.start),
                              "end": float(ph.end), "detail": f"rate {base:g} -> {ph.rate:g} req/s{ramp}"})
    found.sort(key=lambda t: (t["start"], t["end"]))
    return found


# ---------------------------------------------------------------- outcome


def _service_degraded(failures: np.ndarray, successes: np.ndarray, p99_ms: np.ndarray,
                      error_rate: float, p99_s: float) -> np.ndarray:
    ended = failures + successes
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(ended > 0, failures / np.where(ended > 0, ended, 1.0), 0.0)
    slow = np.nan_to_num(p99_ms, nan=0.0) > 1000.0 * p99_s
    return (share > error_rate) | slow


def degraded_buckets(scenario: Any, series: dict[str, np.ndarray]) -> np.ndarray:
    """Per bucket: True when any service's failure share or p99 passes the `[analysis]` thresholds.

    The failure share is failures / (successes + failures) among the requests that
    ended in the bucket; a bucket where none ended is not degraded by it.
    """
    a = scenario.analysis
    out = None
    for name in scenario.services:
        col = lambda k: service_column(series, k, name)  # noqa: E731
        bad = _service_degraded(col("failures"), col("successes"), col("latency_p99_ms"),
                                a.error_rate_threshold, a.latency_p99_threshold)
        out = bad if out is None else out | bad
    return out if out is not None else np.zeros(0, dtype=bool)


def _window_degraded(scenario: Any, rec: Recording, lo: int, hi: int) -> bool:
    """Whether buckets [lo, hi) taken together pass the thresholds for any service."""
    a = scenario.analysis
    for s in rec.services.values():
        fails = sum(float(s.cols["failures_" + k][lo:hi].sum()) for k in FAILURE_KINDS)
        ended = fails + float(s.cols["successes"][lo:hi].sum())
        if ended > 0 and fails / ended > a.error_rate_threshold:
            return True
        p99 = hist_percentiles(s.hist[lo:hi].sum(axis=0), 0.99)[0]
        if math.isfinite(p99) and p99 > a.latency_p99_threshold:
            return True
    return False


def classify(degraded: np.ndarray, bucket: float, end: float, last_end: float, settle: float,
             tail_degraded: bool) -> tuple[str, Optional[float]]:
    """(outcome, recovery_s) from the per-bucket degraded flags.

    `last_end` is when the last trigger ended (0 without triggers, at most `end`);
    `tail_degraded` whether the last `settle` seconds taken together are degraded.
    recovered: the final healthy stretch lasts `settle` past `last_end`; recovery_s
    is from `last_end` to the stretch's first bucket (0 if healthy all along).
    metastable: the last trigger ended `settle` or more before the end, yet the
    last `settle` is degraded. Otherwise inconclusive.
    """
    if not degraded.any():
        return "stable", None
    last_bad = int(np.flatnonzero(degraded)[-1])
    healthy_from = (last_bad + 1) * bucket
    if end - max(healthy_from, last_end) >= settle - 1e-9:
        return "recovered", round(max(0.0, healthy_from - last_end), 3)
    if end - last_end >= settle - 1e-9 and tail_degraded:
        return "metastable", None
    return "inconclusive", None


def _outcome(scenario: Any, rec: Recording, degraded: np.ndarray,
             trig: list[dict[str, Any]]) -> tuple[str, Optional[float]]:
    end = rec.end
    last_end = min(max((t["end"] for t in trig), default=0.0), end)
    settle = float(scenario.analysis.settle)
    tail_lo = max(0, int(math.floor((end - settle) / rec.bucket + 1e-9)))
    tail = _window_degraded(scenario, rec, tail_lo, rec.n_buckets)
    return classify(degraded, rec.bucket, end, last_end, settle, tail)


def first_degraded_s(degraded: np.ndarray, bucket: float) -> Optional[float]:
    """When the first degraded bucket starts (the outage), None if there is none."""
    if not degraded.any():
        return None
    return round(float(np.flatnonzero(degraded)[0]) * bucket, 6)


# ---------------------------------------------------------------- per service


def _phase_bounds(rec: Recording, trig: list[dict[str, Any]]) -> Optional[tuple[int, int]]:
    """Bucket indices where the first trigger starts and the last one ends."""
    if not trig:
        return None
    first = min(t["start"] for t in trig)
    last = max(t["end"] for t in trig)
    i0 = min(rec.n_buckets, max(0, int(math.floor(first / rec.bucket + 1e-9))))
    i1 = min(rec.n_buckets, max(i0, int(math.ceil(last / rec.bucket - 1e-9))))
    return i0, i1


def _p99_ms(hist: np.ndarray, lo: int, hi: int) -> Optional[float]:
    if hi <= lo:
        return None
    merged = hist[lo:hi].sum(axis=0)
    if merged.sum() == 0:
        return None
    return _ms(float(hist_percentiles(merged, 0.99)[0]))


def _mean_ms(total_s: float, count: float) -> Optional[float]:
    return _ms(total_s / count) if count > 0 else None


def _service_summary(rec: Recording, name: str, series: dict[str, np.ndarray],
                     bounds: Optional[tuple[int, int]]) -> dict[str, Any]:
    s = rec.services[name]
    c = s.cols
    tot = {k: float(c[k].sum()) for k in ("arrivals", "successes", "attempts", "retries", "completions",
                                          "latency_sum", "acquires", "acquire_wait_sum", "wasted")}
    failures = {k: _count(c["failures_" + k].sum()) for k in FAILURE_KINDS}
    failed = sum(failures.values())
    requests = _count(tot["arrivals"])
    successes = _count(tot["successes"])
    merged = s.hist.sum(axis=0)
    pct = (lambda q: _ms(float(hist_percentiles(merged, q)[0]))) if merged.sum() else (lambda q: None)
    if bounds is None:
        p99 = {"before": None, "during": None, "after": None}
    else:
        i0, i1 = bounds
        p99 = {"before": _p99_ms(s.hist, 0, i0), "during": _p99_ms(s.hist, i0, i1),
               "after": _p99_ms(s.hist, i1, rec.n_buckets)}
    pods = sum(service_column(series, k, name) for k in
               ("pods_ready", "pods_starting", "pods_warming", "pods_crashloop", "pods_terminating"))
    pods_max = max(float(np.max(pods, initial=0.0)), float(np.max(c["pods_ready_peak"], initial=0.0)))
    return {
        "requests": requests,
        "successes": successes,
        "failures": failures,
        "failures_total": failed,
        "in_flight": requests - successes - failed,
        "attempts": _count(tot["attempts"]),
        "retries": _count(tot["retries"]),
        "amplification": round(tot["attempts"] / tot["arrivals"], 3) if tot["arrivals"] else None,
        "wasted": _count(tot["wasted"]),
        "latency_ms": {"mean": _mean_ms(tot["latency_sum"], tot["completions"]),
                       "p50": pct(0.5), "p99": pct(0.99)},
        "acquire_wait_ms": {"mean": _mean_ms(tot["acquire_wait_sum"], tot["acquires"])},
        "p99_ms": p99,
        "peak_pool_waiting": _count(np.max(c["pool_waiting_peak"], initial=0.0)),
        "pods_max": _count(pods_max),
        "crashes": int(s.crashes),
        "peak_db_connections": _count(np.max(c["db_connections_peak"], initial=0.0)),
        **_trouble(c),
    }


def _trouble(c: dict[str, np.ndarray]) -> dict[str, Any]:
    """Leaks, orphans, foreign statements, lost writes, lock waits, server-side kills (totals)."""
    total = {k: (float(c[k].sum()) if k in c else 0.0)
             for k in TROUBLE_COUNTS + ("lock_wait_sum", "lock_waits_done")}
    out: dict[str, Any] = {k: _count(total[k]) for k in TROUBLE_COUNTS}
    # mean over the waits that ended (one still waiting at the end has no length yet)
    out["lock_wait_ms"] = {"mean": _mean_ms(total["lock_wait_sum"], total["lock_waits_done"])}
    dead = c.get("pool_dead_peak")
    out["peak_pool_dead"] = _count(np.max(dead, initial=0.0)) if dead is not None else 0
    return out


def _database_summary(scenario: Any, rec: Recording, series: dict[str, np.ndarray]) -> dict[str, Any]:
    """Peaks of the shared database; peak_cpu is the busiest bucket's mean share of its cores (0..1)."""
    first = next(iter(rec.services))
    db_cpu = service_column(series, "db_cpu", first)
    return {
        "peak_connections": _count(np.max(rec.db["connections_peak"], initial=0.0)),
        "refused_connects": _count(rec.db["refused"].sum()),
        "peak_cpu": round(float(np.max(db_cpu, initial=0.0)), 3),
        "max_connections": int(scenario.database.max_connections),
        "peak_idle_in_transaction": _count(np.max(rec.db.get("idle_in_transaction_peak", np.zeros(0)),
                                                  initial=0.0)),
    }


# ---------------------------------------------------------------- summary


def summarize(scenario: Any, recording: Recording, series: dict[str, np.ndarray]) -> dict[str, Any]:
    """summary.json (SCENARIO.md): outcome, recovery, per-service totals, database peaks, alerts.

    Each alert carries `lead_s`: seconds from its firing to the first degraded
    bucket (the outage); None without an outage or when it fired after it began.
    """
    trig = triggers(scenario)
    degraded = degraded_buckets(scenario, series)
    outcome, recovery_s = _outcome(scenario, recording, degraded, trig)
    bounds = _phase_bounds(recording, trig)
    pool_max = {name: svc.pool.max for name, svc in scenario.services.items()}
    alerts = evaluate_alerts(series, recording.bucket, pool_max, scenario.database.max_connections,
                             alert_settings(scenario.analysis))
    outage = first_degraded_s(degraded, recording.bucket)
    for a in alerts:
        a["lead_s"] = (round(outage - a["fired_at"], 6)
                       if outage is not None and a["fired_at"] <= outage + 1e-9 else None)
    return {
        "name": scenario.name,
        "seed": int(scenario.seed),
        "duration_s": round(float(recording.end), 6),
        "outcome": outcome,
        "recovery_s": recovery_s,
        "degraded_buckets": int(degraded.sum()),
        "triggers": trig,
        "services": {name: _service_summary(recording, name, series, bounds) for name in scenario.services},
        "database": _database_summary(scenario, recording, series),
        "alerts": alerts,
    }


def run_events(recording: Recording, summary: dict[str, Any]) -> list[Event]:
    """The recorded events and the alerts' firing/resolved rows, in time order (stable)."""
    return sorted(list(recording.events) + alert_events(summary["alerts"]), key=lambda e: e.time)
