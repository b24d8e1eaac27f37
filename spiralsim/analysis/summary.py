"""What a run means: totals, p99 per phase, the outcome, the alerts (summary.json).

Reads the recording and the time series after the run; never touches the model.
Times are simulated seconds; latencies in the summary are milliseconds.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

from ..metrics import Event, Recording, hist_percentiles
from ..scenario import Scenario
from ..scenario.triggers import incidents, phases
from ..vocabulary import FAILURE_KINDS, TROUBLE_COUNTERS
from .alerts import alert_events, evaluate_alerts
from .outcome import degraded_buckets, first_degraded_s, outcome
from .timeseries import service_column


def _ms(seconds: Optional[float]) -> Optional[float]:
    if seconds is None or not math.isfinite(seconds):
        return None
    return round(1000.0 * seconds, 1)


def _count(x: float) -> int:
    return int(round(float(x)))


def triggers(scenario: Scenario) -> list[dict[str, Any]]:
    """The incidents' windows and the traffic phases above their service's base rate, by start.

    Each is `{kind, service, start, end, detail}`; an incident on every service has service "".
    """
    found = [{"kind": i.kind, "service": ",".join(i.services), "start": i.start, "end": i.end,
              "detail": i.summary_detail()} for i in incidents(scenario)]
    found += [{"kind": "traffic", "service": p.service, "start": p.start, "end": p.end,
               "detail": p.summary_detail()} for p in phases(scenario) if p.is_trigger]
    found.sort(key=lambda t: (t["start"], t["end"]))
    return found


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
    failures = {k.name: _count(c[k.column].sum()) for k in FAILURE_KINDS}
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
    total = {k: float(c[k].sum()) for k in TROUBLE_COUNTERS + ("lock_wait_sum", "lock_waits_done")}
    out: dict[str, Any] = {k: _count(total[k]) for k in TROUBLE_COUNTERS}
    # mean over the waits that ended (one still waiting at the end has no length yet)
    out["lock_wait_ms"] = {"mean": _mean_ms(total["lock_wait_sum"], total["lock_waits_done"])}
    out["peak_pool_dead"] = _count(np.max(c["pool_dead_peak"], initial=0.0))
    return out


def _database_summary(rec: Recording, series: dict[str, np.ndarray]) -> dict[str, Any]:
    """Peaks of the shared database; peak_cpu is the busiest bucket's mean share of its cores (0..1)."""
    first = next(iter(rec.services))
    db_cpu = service_column(series, "db_cpu", first)
    return {
        "peak_connections": _count(np.max(rec.db["connections_peak"], initial=0.0)),
        "refused_connects": _count(rec.db["refused"].sum()),
        "peak_cpu": round(float(np.max(db_cpu, initial=0.0)), 3),
        "max_connections": int(rec.max_connections),
        "peak_idle_in_transaction": _count(np.max(rec.db["idle_in_transaction_peak"], initial=0.0)),
    }


# ---------------------------------------------------------------- summary


def summarize(scenario: Scenario, recording: Recording, series: dict[str, np.ndarray]) -> dict[str, Any]:
    """summary.json (SCENARIO.md): outcome, recovery, per-service totals, database peaks, alerts.

    Each alert carries `lead_s`: seconds from its firing to the first degraded
    bucket (the outage); None without an outage or when it fired after it began.
    """
    trig = triggers(scenario)
    degraded = degraded_buckets(scenario, series)
    last_end = max((t["end"] for t in trig), default=0.0)
    verdict, recovery_s = outcome(scenario, recording, degraded, last_end)
    bounds = _phase_bounds(recording, trig)
    pool_max = {name: svc.pool.max for name, svc in scenario.services.items()}
    alerts = evaluate_alerts(series, recording.bucket, pool_max, recording.max_connections, scenario.analysis)
    outage = first_degraded_s(degraded, recording.bucket)
    for a in alerts:
        a["lead_s"] = (round(outage - a["fired_at"], 6)
                       if outage is not None and a["fired_at"] <= outage + 1e-9 else None)
    return {
        "name": scenario.name,
        "seed": int(scenario.seed),
        "duration_s": round(float(recording.end), 6),
        "outcome": verdict,
        "recovery_s": recovery_s,
        "degraded_buckets": int(degraded.sum()),
        "triggers": trig,
        "services": {name: _service_summary(recording, name, series, bounds) for name in scenario.services},
        "database": _database_summary(recording, series),
        "alerts": alerts,
    }


def run_events(recording: Recording, summary: dict[str, Any]) -> list[Event]:
    """The recorded events and the alerts' firing/resolved rows, in time order (stable)."""
    return sorted(list(recording.events) + alert_events(summary["alerts"]), key=lambda e: e.time)
