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
from ..vocabulary import FAILURE_KINDS, REFUSED_AT_ONCE, TROUBLE_COUNTERS
from .alerts import alert_events, evaluate_alerts
from .arithmetic import Arithmetic, arithmetic, reads
from .impact import impact
from .outcome import degraded_buckets, outcome, service_degraded
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


def _phase_p99(rec: Recording, name: str, bounds: Optional[tuple[int, int]],
               settled: Optional[float]) -> dict[str, Optional[float]]:
    """p99 before the first trigger, during the triggers, and after: from the latest of the
    last trigger's end, the service's settling and the end of its impact (None if it never settled)."""
    if bounds is None:
        return {"before": None, "during": None, "after": None}
    hist = rec.services[name].hist
    i0, i1 = bounds
    after = None
    if settled is not None:
        lo = max(i1, min(rec.n_buckets, int(math.ceil(settled / rec.bucket - 1e-9))))
        after = _p99_ms(hist, lo, rec.n_buckets)
    return {"before": _p99_ms(hist, 0, i0), "during": _p99_ms(hist, i0, i1), "after": after}


def _quiet_and_healthy(hurt: dict[str, Any]) -> Optional[float]:
    """When a service was both settled and past its impact: where "p99 after" starts."""
    if hurt["settled_s"] is None:
        return None
    return max(hurt["settled_s"], hurt["end_s"] or 0.0)


def _service_summary(scenario: Scenario, rec: Recording, name: str, series: dict[str, np.ndarray],
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
    hurt = impact(scenario, rec, series, name, service_degraded(scenario, series, name), failed)
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
        # attempts refused at once by a defence, each counted even when a retry later succeeded
        "refused_attempts": {k: _count(c["attempts_" + k].sum()) for k in REFUSED_AT_ONCE},
        "retries_denied": _count(c["retries_denied"].sum()),
        "latency_ms": {"mean": _mean_ms(tot["latency_sum"], tot["completions"]),
                       "p50": pct(0.5), "p99": pct(0.99)},
        "acquire_wait_ms": {"mean": _mean_ms(tot["acquire_wait_sum"], tot["acquires"])},
        "p99_ms": _phase_p99(rec, name, bounds, _quiet_and_healthy(hurt)),
        "impact": hurt,
        "peak_pool_waiting": _count(np.max(c["pool_waiting_peak"], initial=0.0)),
        "pods_max": _count(pods_max),
        "crashes": int(s.crashes),
        "liveness_restarts": sum(1 for e in rec.events if e.kind == "liveness_restart" and e.service == name),
        "oom_kills": sum(1 for e in rec.events if e.kind == "oom_killed" and e.service == name),
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


def _replicas_summary(rec: Recording, series: dict[str, np.ndarray], arith: Arithmetic) -> dict[str, Any]:
    """The read replicas: what the pools can ask each for, the most any one held, their refusals, their CPU."""
    first = next(iter(rec.services))
    return {
        "count": len(rec.replicas),
        "connections": int(arith.replica_total),
        "peak_connections": _count(max((np.max(r["connections_peak"], initial=0.0) for r in rec.replicas),
                                       default=0.0)),
        "refused_connects": _count(sum(r["refused"].sum() for r in rec.replicas)),
        "peak_cpu": round(float(np.max(service_column(series, "replica_cpu", first), initial=0.0)), 3),
    }


def _database_summary(rec: Recording, series: dict[str, np.ndarray], arith: Arithmetic) -> dict[str, Any]:
    """Peaks of the primary; peak_cpu is the busiest bucket's mean share of its cores (0..1); the replicas'."""
    first = next(iter(rec.services))
    db_cpu = service_column(series, "db_cpu", first)
    return {
        "peak_connections": _count(np.max(rec.db["connections_peak"], initial=0.0)),
        "refused_connects": _count(rec.db["refused"].sum()),
        "peak_cpu": round(float(np.max(db_cpu, initial=0.0)), 3),
        "max_connections": int(rec.max_connections),
        "peak_idle_in_transaction": _count(np.max(rec.db["idle_in_transaction_peak"], initial=0.0)),
        "peak_abandoned_transactions": _count(np.max(rec.db["orphans_open_peak"], initial=0.0)),
        "replicas": _replicas_summary(rec, series, arith),
    }


# ---------------------------------------------------------------- summary


def _lead_s(alert: dict[str, Any], starts: dict[str, Optional[float]],
            first_trigger: Optional[float]) -> Optional[float]:
    """Seconds an alert fired before the impact it warned of began: the impact of its own
    service (the earliest of any for a database alert); None when it fired after that
    began, or before the first trigger started (it was firing already: noise, not a warning)."""
    if alert["service"]:
        begins = starts.get(alert["service"])
    else:
        begins = min((t for t in starts.values() if t is not None), default=None)
    if begins is None or alert["fired_at"] > begins + 1e-9:
        return None
    if first_trigger is not None and alert["fired_at"] <= first_trigger + 1e-9:
        return None
    return round(begins - alert["fired_at"], 6)


def _detection(alerts: list[dict[str, Any]], service: str, hurt: dict[str, Any],
               first_trigger: Optional[float]) -> dict[str, Any]:
    """Time to detect: from the impact's start to the first alert of the service or the
    database firing at that time or later within it (0 for one already firing, if it
    began after the first trigger started), and which alert."""
    start, end = hurt["start_s"], hurt["end_s"]
    if start is None:
        return {"detected_s": None, "detected_by": None}
    for a in alerts:  # by firing time
        if a["service"] not in (service, "") or a["fired_at"] > end + 1e-9:
            continue
        if a["resolved_at"] is not None and a["resolved_at"] <= start + 1e-9:
            continue
        if first_trigger is not None and a["fired_at"] <= first_trigger + 1e-9:
            continue
        return {"detected_s": round(max(0.0, a["fired_at"] - start), 6), "detected_by": a["name"]}
    return {"detected_s": None, "detected_by": None}


def summarize(scenario: Scenario, recording: Recording, series: dict[str, np.ndarray]) -> dict[str, Any]:
    """summary.json (docs/reference.md §4): outcome and why, recovery, settling, per-service
    totals and impact, database peaks, alerts with their lead on the impact."""
    trig = triggers(scenario)
    arith = arithmetic(scenario)
    verdict = outcome(scenario, recording, series, arith, max((t["end"] for t in trig), default=0.0))
    bounds = _phase_bounds(recording, trig)
    services = {name: _service_summary(scenario, recording, name, series, bounds) for name in scenario.services}
    # a pod that reads keeps a pool per read replica beside the primary's: its gauges are theirs together
    replicas = scenario.database.read_replicas
    pool_max = {name: svc.pool.max * (1 + (replicas if reads(svc) else 0)) for name, svc in scenario.services.items()}
    pods_in_use = {name: s.pod_in_use for name, s in recording.services.items()}
    alerts = evaluate_alerts(series, recording.bucket, pool_max, recording.max_connections, scenario.analysis,
                             pods_in_use)
    starts = {name: v["impact"]["start_s"] for name, v in services.items()}
    first_trigger = min((t["start"] for t in trig), default=None)
    for a in alerts:
        a["lead_s"] = _lead_s(a, starts, first_trigger)
    for name, v in services.items():
        v["impact"].update(_detection(alerts, name, v["impact"], first_trigger))
    settled = [v["impact"]["settled_s"] for v in services.values()]
    return {
        "name": scenario.name,
        "seed": int(scenario.seed),
        "duration_s": round(float(recording.end), 6),
        "outcome": verdict.outcome,
        "outcome_reason": verdict.reason,
        "recovery_s": verdict.recovery_s,
        "settled_s": None if None in settled else max(settled, default=0.0),
        "degraded_buckets": int(degraded_buckets(scenario, series).sum()),
        "triggers": trig,
        "services": services,
        "database": _database_summary(recording, series, arith),
        "arithmetic": {"verdict": arith.verdict, "connections": arith.total,
                       "alert_limit": round(arith.alert_limit, 6), "usable": arith.usable},
        "alerts": alerts,
    }


def run_events(recording: Recording, summary: dict[str, Any]) -> list[Event]:
    """The recorded events and the alerts' firing/resolved rows, in time order (stable)."""
    return sorted(list(recording.events) + alert_events(summary["alerts"]), key=lambda e: e.time)
