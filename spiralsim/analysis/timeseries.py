"""The time series of a run: one row per bucket and service, the columns of timeseries.csv."""
from __future__ import annotations

import numpy as np

from ..metrics import Recording, hist_percentiles
from ..vocabulary import FAILURE_KINDS, REFUSED_AT_ONCE, TROUBLE_COUNTERS

GAUGES = (
    "pool_total", "pool_idle", "pool_waiting", "pods_ready", "pods_starting",
    "pods_warming", "pods_crashloop", "pods_terminating", "inflight", "requests_open", "pods_unready",
)
#: PgBouncer's gauges, as SHOW POOLS names them (0 for a service without PgBouncer).
PGBOUNCER_GAUGES = ("cl_active", "cl_waiting", "sv_active", "sv_idle")


def service_column(series: dict[str, np.ndarray], key: str, service: str) -> np.ndarray:
    """One service's rows of a time-series column, in time order."""
    return series[key][series["service"] == service]


def _mean_ms(total_s: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Per bucket, total seconds / count in milliseconds; NaN where the count is 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, 1000 * total_s / np.maximum(count, 1), np.nan)


def _service_columns(rec: Recording, name: str, safe_len: np.ndarray) -> dict[str, np.ndarray]:
    """The columns of one service, up to (not including) the database's."""
    n = rec.n_buckets
    s = rec.services[name]
    c = s.cols
    col: dict[str, np.ndarray] = {"time": np.arange(n) * rec.bucket, "service": np.array([name] * n, dtype=object)}
    for k in ("arrivals", "attempts", "retries", "successes", "slow"):
        col[k] = c[k]
    fails = np.zeros(n)
    for kind in FAILURE_KINDS:
        col[kind.column] = c[kind.column]
        fails = fails + c[kind.column]
    col["failures"] = fails
    col["goodput"] = c["successes"] / safe_len
    col["wasted"] = c["wasted"]
    for k in REFUSED_AT_ONCE:
        col["attempts_" + k] = c["attempts_" + k]
    col["retries_denied"] = c["retries_denied"]
    col["breaker_state"] = c["breaker_state_peak"]
    col["instances_frozen"] = c["instances_frozen_area"] / safe_len
    col["pool_frozen"] = c["pool_frozen_area"] / safe_len
    with np.errstate(invalid="ignore", divide="ignore"):
        col["concurrency_limit"] = np.where(c["limited_pods_area"] > 0, c["concurrency_limit_area"] /
                                            np.maximum(c["limited_pods_area"], 1e-12), np.nan)
    col["latency_mean_ms"] = _mean_ms(c["latency_sum"], c["completions"])
    col["acquire_wait_mean_ms"] = _mean_ms(c["acquire_wait_sum"], c["acquires"])
    for q, label in ((0.5, "p50"), (0.9, "p90"), (0.99, "p99")):
        col[f"latency_{label}_ms"] = 1000 * hist_percentiles(s.hist, q)
    col["statement_p99_ms"] = (1000 * hist_percentiles(s.stmt_hist, 0.99) if s.stmt_hist is not None
                               else np.full(n, np.nan))
    for g in GAUGES:
        col[g] = c[g + "_area"] / safe_len
    col["pool_waiting_max"] = c["pool_waiting_peak"]
    col["pool_waiting_sampled"] = c["pool_waiting_sample"]
    col["pool_waiting_worst_pod"] = c["pool_waiting_worst_pod"]
    col["pool_total_max"] = c["pool_total_peak"]
    col["pool_in_use"] = col["pool_total"] - col["pool_idle"]
    pods = col["pods_ready"] + col["pods_warming"] + col["pods_terminating"]
    with np.errstate(invalid="ignore", divide="ignore"):
        col["pod_cpu"] = np.where(pods > 0, c["cpu_busy"] / (safe_len * np.maximum(pods, 1e-12)), 0.0)
        capacity = s.pool_max * pods  # what the pods that have pools may hold
        col["pool_utilization"] = np.where(capacity > 0, col["pool_in_use"] / np.maximum(capacity, 1e-12), 0.0)
    col["event_loop_lag_ms"] = _mean_ms(c["loop_lag_sum"], c["loop_lag_samples"])
    col["event_loop_lag_max_ms"] = 1000 * c["loop_lag_max"]
    for k in TROUBLE_COUNTERS:
        col[k] = c[k]
    col["lock_wait_mean_ms"] = _mean_ms(c["lock_wait_sum"], c["lock_waits_done"])
    col["pool_dead"] = c["pool_dead_area"] / safe_len
    col["pool_leaked"] = c["pool_leaked_area"] / safe_len
    for k in ("connects", "closes", "refused_connects"):
        col[k] = c[k]
    col["db_connections_service"] = c["db_connections_area"] / safe_len
    for g in PGBOUNCER_GAUGES:
        col[g] = c[g + "_area"] / safe_len
    col["cl_waiting_max"] = c["cl_waiting_peak"]
    return col


def _age_at_bucket_end(since: np.ndarray, rec: Recording) -> np.ndarray:
    """Seconds since `since` at each bucket's end (0 where `since` is -1: nothing to age)."""
    ends = np.minimum((np.arange(rec.n_buckets) + 1) * rec.bucket, rec.end)
    return np.where(since >= 0, ends - since, 0.0)


def _database_columns(rec: Recording, safe_len: np.ndarray) -> dict[str, np.ndarray]:
    """The database's columns (the same on every service's rows)."""
    db = rec.db
    conn = db["connections_area"] / safe_len
    active = db["active_area"] / safe_len
    iit = db["idle_in_transaction_area"] / safe_len
    return {
        "db_connections": conn,
        "db_connections_max": db["connections_peak"],
        "db_connections_pct": 100.0 * conn / rec.max_connections,
        "db_active": active,
        "db_idle_in_transaction": iit,
        "db_idle_in_transaction_sampled": db["idle_in_transaction_sample"],
        "db_oldest_idle_in_transaction_s": _age_at_bucket_end(db["iit_oldest_since_sample"], rec),
        "db_abandoned_transactions": db["orphans_open_area"] / safe_len,
        "db_idle": np.maximum(conn - active - iit, 0.0),
        "db_cpu": db["busy_cores_area"] / safe_len,
        "db_connect_cpu": db["connect_cpu"] / safe_len,
        "db_refused_connect_cpu": db["refused_connect_cpu"] / safe_len,
        "db_refused_connects": db["refused"],
    }


def _replica_columns(rec: Recording, safe_len: np.ndarray) -> dict[str, np.ndarray]:
    """The read replicas' columns, the same set whatever their number (0 without replicas)."""
    reps = rec.replicas
    zero = np.zeros(rec.n_buckets)
    return {
        "replica_connections": sum((r["connections_area"] for r in reps), zero) / safe_len,
        "replica_connections_max": np.max([r["connections_peak"] for r in reps], axis=0) if reps else zero,
        "replica_cpu": sum((r["busy_cores_area"] for r in reps), zero) / (safe_len * max(1, len(reps))),
        "replica_refused_connects": sum((r["refused"] for r in reps), zero),
    }


def build_timeseries(rec: Recording) -> dict[str, np.ndarray]:
    """Columns of timeseries.csv (SCENARIO.md), rows ordered by time, then service in file order."""
    safe_len = np.where(rec.bucket_len > 0, rec.bucket_len, 1.0)
    database = {**_database_columns(rec, safe_len), **_replica_columns(rec, safe_len)}
    per = [{**_service_columns(rec, name, safe_len), **database} for name in rec.services]
    out: dict[str, np.ndarray] = {}
    for key in per[0]:
        stacked = np.stack([p[key] for p in per], axis=1)  # (n, services)
        out[key] = stacked.reshape(-1)
    return out
