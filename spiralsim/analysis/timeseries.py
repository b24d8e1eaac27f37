"""The time series of a run: one row per bucket and service, the columns of timeseries.csv."""
from __future__ import annotations

import numpy as np

from ..metrics import Recording, hist_percentiles
from ..vocabulary import FAILURE_KINDS, TROUBLE_COUNTERS

GAUGES = (
    "pool_total", "pool_idle", "pool_waiting", "pods_ready", "pods_starting",
    "pods_warming", "pods_crashloop", "pods_terminating", "inflight", "requests_open",
)


def service_column(series: dict[str, np.ndarray], key: str, service: str) -> np.ndarray:
    """One service's rows of a time-series column, in time order."""
    return series[key][series["service"] == service]


def build_timeseries(rec: Recording) -> dict[str, np.ndarray]:
    """Columns of timeseries.csv (SCENARIO.md), rows ordered by time, then service in file order."""
    n = rec.n_buckets
    names = list(rec.services)
    length = rec.bucket_len
    safe_len = np.where(length > 0, length, 1.0)
    db = rec.db
    db_conn = db["connections_area"] / safe_len
    db_active = db["active_area"] / safe_len
    db_iit = db["idle_in_transaction_area"] / safe_len
    per: list[dict[str, np.ndarray]] = []
    for name in names:
        s = rec.services[name]
        c = s.cols
        col: dict[str, np.ndarray] = {}
        col["time"] = np.arange(n) * rec.bucket
        col["service"] = np.array([name] * n, dtype=object)
        for k in ("arrivals", "attempts", "retries", "successes"):
            col[k] = c[k]
        fails = np.zeros(n)
        for kind in FAILURE_KINDS:
            col[kind.column] = c[kind.column]
            fails = fails + c[kind.column]
        col["failures"] = fails
        col["goodput"] = c["successes"] / safe_len
        col["wasted"] = c["wasted"]
        with np.errstate(invalid="ignore", divide="ignore"):
            col["latency_mean_ms"] = np.where(c["completions"] > 0, 1000 * c["latency_sum"] / c["completions"], np.nan)
            col["acquire_wait_mean_ms"] = np.where(c["acquires"] > 0, 1000 * c["acquire_wait_sum"] / c["acquires"], np.nan)
        for q, label in ((0.5, "p50"), (0.9, "p90"), (0.99, "p99")):
            col[f"latency_{label}_ms"] = 1000 * hist_percentiles(s.hist, q)
        for g in GAUGES:
            col[g] = c[g + "_area"] / safe_len
        col["pool_waiting_max"] = c["pool_waiting_peak"]
        col["pool_waiting_sampled"] = c["pool_waiting_sample"]
        col["pool_waiting_worst_pod"] = c["pool_waiting_worst_pod"]
        col["pool_total_max"] = c["pool_total_peak"]
        pods = col["pods_ready"] + col["pods_warming"] + col["pods_terminating"]
        with np.errstate(invalid="ignore", divide="ignore"):
            col["pod_cpu"] = np.where(pods > 0, c["cpu_busy"] / (safe_len * np.maximum(pods, 1e-12)), 0.0)
        for k in TROUBLE_COUNTERS:
            col[k] = c[k]
        with np.errstate(invalid="ignore", divide="ignore"):
            col["lock_wait_mean_ms"] = np.where(c["lock_waits_done"] > 0,
                                                1000 * c["lock_wait_sum"] / np.maximum(c["lock_waits_done"], 1), np.nan)
        col["pool_dead"] = c["pool_dead_area"] / safe_len
        col["connects"] = c["connects"]
        col["closes"] = c["closes"]
        col["refused_connects"] = c["refused_connects"]
        col["db_connections_service"] = c["db_connections_area"] / safe_len
        col["db_connections"] = db_conn
        col["db_connections_max"] = db["connections_peak"]
        col["db_connections_pct"] = 100.0 * db_conn / rec.max_connections
        col["db_active"] = db_active
        col["db_idle_in_transaction"] = db_iit
        col["db_idle_in_transaction_sampled"] = db["idle_in_transaction_sample"]
        col["db_idle"] = np.maximum(db_conn - db_active - db_iit, 0.0)
        col["db_cpu"] = db["busy_cores_area"] / safe_len
        col["db_refused_connects"] = db["refused"]
        per.append(col)
    out: dict[str, np.ndarray] = {}
    for key in per[0]:
        stacked = np.stack([p[key] for p in per], axis=1)  # (n, services)
        out[key] = stacked.reshape(-1)
    return out
