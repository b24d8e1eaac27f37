"""The article's alerts, evaluated on a run's series after the run as Prometheus would.

Each alert is a condition evaluated at every scrape (the end of each bucket, on
that bucket's figures) with a `for:` wait: it is pending from the first
evaluation where the condition holds, fires at the first evaluation where it has
held for the wait at every evaluation in between, and resolves at the first
evaluation where it no longer holds; a firing therefore lasts at least one
evaluation. Times are seconds of simulated time. The thresholds and waits are the
scenario's `[analysis]` keys (`AnalysisConfig`, where their defaults live). One
row of `ALERTS` per alert; docs/reference.md gives each one's expression.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, Optional

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..metrics import Event
from ..scenario import AnalysisConfig
from .timeseries import service_column


@dataclass(frozen=True)
class Scrape:
    """What an alert's expression can read of one service (or, for the database, of the
    first service's rows, where the database columns repeat): its columns, each pod's
    connections checked out at each scrape, and its pool.max (max_connections for the database)."""

    col: Callable[[str], np.ndarray]
    pods_in_use: np.ndarray  # (pods, buckets)
    capacity: int
    bucket: float


@dataclass(frozen=True)
class Alert:
    """One alert: per `service` or for the `database`; `condition` per evaluation,
    `sustain` the `[analysis]` key of its `for:` wait, `meaning` its words."""

    name: str
    scope: str
    sustain: str
    condition: Callable[[Scrape, AnalysisConfig], np.ndarray]
    meaning: Callable[[AnalysisConfig], str]


def _pool_waiting(s: Scrape, a: AnalysisConfig) -> np.ndarray:
    # What a scrape of waitingCount sees at the bucket's end, not the bucket's peak:
    # a queue that forms and drains between scrapes is not the article's alert.
    return s.col("pool_waiting_sampled") > 0


def _pool_saturation(s: Scrape, a: AnalysisConfig) -> np.ndarray:
    """Connections checked out (total - idle) over the ready pods' pool.max."""
    capacity = s.col("pods_ready") * s.capacity
    with np.errstate(divide="ignore", invalid="ignore"):
        return (capacity > 0) & (s.col("pool_in_use") > a.pool_saturation_share * capacity)


def pod_floor(s: Scrape, window_s: float) -> np.ndarray:
    """Per pod and scrape, the fewest connections checked out over the trailing window
    (`min_over_time` of total - idle): connections that never came back."""
    window = max(1, math.ceil(window_s / s.bucket - 1e-9))
    pods = s.pods_in_use
    if pods.size == 0:
        return np.zeros((0, pods.shape[-1] if pods.ndim == 2 else 0))
    padded = np.concatenate((np.full((pods.shape[0], window - 1), np.inf), pods), axis=1)
    return sliding_window_view(padded, window, axis=1).min(axis=2)


def _pool_collapse(s: Scrape, a: AnalysisConfig) -> np.ndarray:
    """Some pod has kept all but `pool_collapse_share` of its pool checked out for the whole window."""
    floor = pod_floor(s, a.pool_collapse_window)
    starved = (floor >= (1.0 - a.pool_collapse_share) * s.capacity).any(axis=0)
    return starved & (s.col("arrivals") > 0)


def _db_connections_high(s: Scrape, a: AnalysisConfig) -> np.ndarray:
    return s.col("db_connections_max") > a.db_connections_share * s.capacity


def _idle_in_transaction(s: Scrape, a: AnalysisConfig) -> np.ndarray:
    # `max(now() - state_change)` over the sessions `idle in transaction`, scraped: a
    # transaction's think time comes and goes, an abandoned one grows old.
    return s.col("db_oldest_idle_in_transaction_s") > a.idle_in_transaction_age


def _slow_query_budget(s: Scrape, a: AnalysisConfig) -> np.ndarray:
    # The service's statements' p99 over the bucket (NaN, no statement ended: not above).
    return np.nan_to_num(s.col("statement_p99_ms"), nan=0.0) > 1000 * a.statement_p99_budget


def _error_rate(s: Scrape, a: AnalysisConfig) -> np.ndarray:
    """The service's failed requests over those that ended in the bucket, above the threshold that makes
    a bucket degraded (no request ended: not above)."""
    failures, ended = s.col("failures"), s.col("failures") + s.col("successes")
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(ended > 0, failures / np.where(ended > 0, ended, 1.0), 0.0)
    return share > a.error_rate_threshold


#: The alerts, in the order of same-time firings.
ALERTS: tuple[Alert, ...] = (
    Alert("pool_waiting", "service", "pool_waiting_for", _pool_waiting,
          lambda a: f"requests waiting for a pool connection for {a.pool_waiting_for:g} s"),
    Alert("pool_saturation", "service", "pool_saturation_for", _pool_saturation,
          lambda a: (f"connections in use above {a.pool_saturation_share:.0%} of the ready pods' pools "
                     f"for {a.pool_saturation_for:g} s")),
    Alert("pool_collapse", "service", "pool_collapse_for", _pool_collapse,
          lambda a: (f"a pod with at most {a.pool_collapse_share:.0%} of its pool free at any moment "
                     f"of {a.pool_collapse_window:g} s, while traffic flows, for {a.pool_collapse_for:g} s")),
    Alert("db_connections_high", "database", "db_connections_for", _db_connections_high,
          lambda a: (f"database connections above {a.db_connections_share:.0%} "
                     f"of max_connections for {a.db_connections_for:g} s")),
    Alert("idle_in_transaction", "database", "idle_in_transaction_for", _idle_in_transaction,
          lambda a: (f"a session idle in transaction for more than {a.idle_in_transaction_age:g} s, "
                     f"for {a.idle_in_transaction_for:g} s")),
    Alert("slow_query_budget", "service", "statement_budget_for", _slow_query_budget,
          lambda a: (f"the service's statements' p99 above the budget of {1000 * a.statement_p99_budget:g} ms "
                     f"for {a.statement_budget_for:g} s")),
    Alert("error_rate", "service", "error_rate_for", _error_rate,
          lambda a: (f"more than {100 * a.error_rate_threshold:g} % of the service's requests failed "
                     f"for {a.error_rate_for:g} s")),
)
ALERT_NAMES = tuple(a.name for a in ALERTS)


def alert_meanings(analysis: AnalysisConfig = AnalysisConfig()) -> dict[str, str]:
    """What each alert means, in words, with its thresholds."""
    return {alert.name: alert.meaning(analysis) for alert in ALERTS}


def episodes(condition: np.ndarray, bucket: float, sustain_s: float) -> list[tuple[float, Optional[float]]]:
    """(fired_at, resolved_at) of each firing, evaluating `condition[i]` at the end of bucket i.

    A run of true evaluations from bucket `start` to `stop` (exclusive) is pending
    from `(start + 1) x bucket`, fires `for` later if it still holds then (at the
    evaluation `need = ceil(sustain_s / bucket)` after its first), and resolves at the
    first false evaluation, `(stop + 1) x bucket`; `resolved_at` is None when it holds
    to the end. A firing lasts at least one evaluation.
    """
    need = max(0, math.ceil(sustain_s / bucket - 1e-9))
    out: list[tuple[float, Optional[float]]] = []
    cond = np.concatenate(([False], np.asarray(condition, dtype=bool), [False]))
    edges = np.flatnonzero(np.diff(cond.astype(np.int8)))
    n = len(condition)
    for start, stop in zip(edges[0::2], edges[1::2]):
        if stop - start > need:
            resolved = round(float((stop + 1) * bucket), 6) if stop < n else None
            out.append((round(float((start + need + 1) * bucket), 6), resolved))
    return out


def _column(series: dict[str, np.ndarray], service: str, key: str) -> np.ndarray:
    return service_column(series, key, service)


def evaluate_alerts(series: dict[str, np.ndarray], bucket: float, pool_max: dict[str, int],
                    max_connections: int, analysis: AnalysisConfig = AnalysisConfig(),
                    pods_in_use: Optional[dict[str, np.ndarray]] = None) -> list[dict[str, Any]]:
    """Every firing of the alerts: `{name, service, fired_at, resolved_at}`, by time.

    `pool_max` maps each service to its pool.max, `pods_in_use` each service to its
    pods' connections checked out at each scrape (pods x buckets; none when absent).
    Database alerts have service "" and read the first service's rows.
    """
    found: list[dict[str, Any]] = []
    first = next(iter(pool_max), None)
    for alert in ALERTS:
        if alert.scope == "service":
            scopes = [(service, service, size) for service, size in pool_max.items()]
        else:
            scopes = [("", first, max_connections)] if first is not None else []
        for label, rows_of, capacity in scopes:
            col = partial(_column, series, rows_of)
            pods = (pods_in_use or {}).get(rows_of, np.zeros((0, len(col("arrivals")))))
            cond = alert.condition(Scrape(col, pods, capacity, bucket), analysis)
            for fired, resolved in episodes(cond, bucket, getattr(analysis, alert.sustain)):
                found.append({"name": alert.name, "service": label, "fired_at": fired, "resolved_at": resolved})
    found.sort(key=lambda a: (a["fired_at"], ALERT_NAMES.index(a["name"])))
    return found


def alert_events(alerts: list[dict[str, Any]]) -> list[Event]:
    """The events.csv rows of the alerts: `alert_firing` and `alert_resolved`, the name in detail."""
    events = []
    for a in alerts:
        events.append(Event(a["fired_at"], a["service"], "alert_firing", a["name"]))
        if a["resolved_at"] is not None:
            events.append(Event(a["resolved_at"], a["service"], "alert_resolved", a["name"]))
    events.sort(key=lambda e: e.time)
    return events
