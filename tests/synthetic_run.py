"""Synthetic runs for the output-side tests: a real scenario and a Recording written
bucket by bucket through the Recorder, no model involved."""
from __future__ import annotations

from typing import Callable

from builders import scenario

from spiralsim.analysis import Result, build_timeseries, run_events, summarize
from spiralsim.metrics import HIST_BINS, Event, Recorder, hist_bin
from spiralsim.scenario import Scenario
from spiralsim.vocabulary import KIND_INDEX, TROUBLE_COUNTERS


def fake_scenario(duration: float = 600.0, bucket: float = 1.0, services: tuple[str, ...] = ("api",),
                  phases: tuple = (), incidents: tuple = (), settle: float = 60.0,
                  error_rate: float = 0.01, p99: float = 1.0, max_connections: int = 100,
                  pool_max: int = 10, description: str = "A synthetic story.", pod: dict | None = None,
                  **analysis: float) -> Scenario:
    """A real, validated scenario for the synthetic runs: 100 req/s on 2 pods per service,
    `phases` as (start, end, rate), `incidents` as slow_queries windows (start, end),
    `pod` keys of each service's pod table.

    Extra keyword arguments become `[analysis]` keys (the alerts' thresholds)."""
    return scenario({
        "name": "synthetic", "title": "A synthetic run", "description": description,
        "duration": duration, "seed": 7, "bucket": bucket,
        "database": {"max_connections": max_connections},
        "services": {name: {
            "traffic": {"rate": 100.0, "phases": [{"start": s, "end": e, "rate": r} for s, e, r in phases]},
            "endpoints": {"q": {}},
            "pool": {"max": pool_max},
            "pod": {"replicas": 2, **(pod or {})},
        } for name in services},
        "incidents": [{"kind": "slow_queries", "start": s, "end": e, "factor": 100.0} for s, e in incidents],
        "analysis": {"error_rate_threshold": error_rate, "latency_p99_threshold": p99, "settle": settle,
                     **analysis},
    })


def healthy(t: float) -> dict:
    """A calm second: 100 requests in 5 ms, 2 pods, 3 connections in use (on one pod), nothing
    idle in transaction (`iit_since`: when the oldest session became so, -1 for none)."""
    return {"ok": 100, "fail": 0, "latency": 0.005, "pool_total": 4, "pool_idle": 1, "waiting": 0,
            "pods_ready": 2, "db_connections": 4, "idle_in_transaction": 0, "iit_since": -1.0}


#: Per-bucket counters a profile may set (0 unless it does): the trouble counters and
#: the two behind the lock-wait mean.
TROUBLE = TROUBLE_COUNTERS + ("lock_waits_done", "lock_wait_sum")


def build(scenario: Scenario, profile: Callable[[float], dict] = healthy,
          events: tuple[Event, ...] = ()) -> Result:
    """Write `profile(t)` for every bucket into a Recorder, finalize, analyse."""
    names = list(scenario.services)
    rec = Recorder(scenario.duration, scenario.bucket, names, scenario.database.max_connections)
    in_use = {name: rec.services[name].pod_level("in_use") for name in names}
    for b in range(rec.n_buckets):
        t = b * scenario.bucket
        p = {**healthy(t), **profile(t)}
        for name in names:
            s = rec.services[name]
            ended = p["ok"] + p["fail"]
            s.arrivals[b] = ended
            s.successes[b] = p["ok"]
            s.slow[b] = p.get("slow", 0)
            s.latency_sum[b] = ended * p["latency"]
            s.acquires[b] = ended
            s.acquire_wait_sum[b] = ended * p["latency"] / 2
            s.failures[KIND_INDEX[p.get("kind", "acquire_timeout")]][b] = p["fail"]
            s.hist[b * HIST_BINS + hist_bin(p["latency"])] += ended
            s.pool_total.set(t, p["pool_total"])
            s.pool_idle.set(t, p["pool_idle"])
            s.pool_waiting.set(t, p["waiting"])
            s.pods_ready.set(t, p["pods_ready"])
            s.db_connections.set(t, p["db_connections"])
            s.pool_dead.set(t, p.get("pool_dead", 0))
            s.pool_leaked.set(t, p.get("pool_leaked", 0))
            s.pods_crashloop.set(t, p.get("pods_crashloop", 0))
            in_use[name].set(t, p["pool_total"] - p["pool_idle"])
            for k in TROUBLE:
                getattr(s, k)[b] = p.get(k, 0)
        rec.db.connections.set(t, p["db_connections"] * len(names))
        rec.db.idle_in_transaction.set(t, p["idle_in_transaction"])
        rec.db.active.set(t, p.get("db_active", 0))
        rec.db.iit_oldest_since.set(t, p["iit_since"])
        rec.db.orphans_open.set(t, p.get("abandoned", 0))
    for e in events:
        rec.event(*e)
    recording = rec.finalize(scenario.duration)
    series = build_timeseries(recording)
    summary = summarize(scenario, recording, series)
    return Result(scenario, recording, series, run_events(recording, summary), summary)


def spiral(start: float, stop: float) -> Callable[[float], dict]:
    """Degraded (half the requests fail, the other half succeed slowly: 3 s latency; pool
    waiting) on [start, stop)."""
    def profile(t: float) -> dict:
        if start <= t < stop:
            return {"ok": 50, "fail": 50, "slow": 50, "latency": 3.0, "pool_total": 20, "pool_idle": 0,
                    "waiting": 30, "db_connections": 20}
        return {}
    return profile


def leak(outage: float = 10800.0) -> Callable[[float], dict]:
    """A leak: from 1 h the pool's 10 connections are checked out for good (an abandoned
    transaction idle in transaction since then) while traffic flows; from `outage` every
    request waits and half of them fail."""
    def profile(t: float) -> dict:
        if t >= outage:
            return {"ok": 50, "fail": 50, "latency": 3.0, "pool_total": 10, "pool_idle": 0, "waiting": 30,
                    "pool_dead": 10, "pool_leaked": 10, "leaked": 0, "idle_in_transaction": 1,
                    "iit_since": 3600.0, "abandoned": 1}
        if t >= 3600:
            return {"pool_total": 10, "pool_idle": 0, "pool_dead": 3, "pool_leaked": 10, "abandoned": 1,
                    "iit_since": 3600.0,
                    "leaked": 1 if int(t) % 100 == 0 else 0, "orphaned": 1 if int(t) % 1000 == 0 else 0,
                    "lost_writes": 2 if int(t) % 1000 == 0 else 0, "idle_in_transaction": 1,
                    "lock_waits": 1 if int(t) % 500 == 0 else 0, "lock_waits_done": 1 if int(t) % 500 == 0 else 0,
                    "lock_wait_sum": 0.25 if int(t) % 500 == 0 else 0}
        return {}
    return profile
