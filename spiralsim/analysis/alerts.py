"""The article's five alerts, evaluated on a run's time series after the run.

Each alert is a per-bucket condition that must hold for a sustained time, as a
Prometheus rule with `for:` would: it fires once the condition has held for the
sustain time (at the end of the bucket that completes it) and resolves at the
start of the first bucket where the condition no longer holds. Times are
seconds of simulated time. The thresholds and sustain times are the scenario's
`[analysis]` keys (`AnalysisConfig`, where their defaults, the article's values,
live). One row of `ALERTS` per alert.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..metrics import Event
from ..scenario import AnalysisConfig
from .timeseries import service_column

#: pool_collapse is not evaluated while the trailing maximum is below this.
POOL_COLLAPSE_MIN_PEAK = 2.0

Column = Callable[[str], np.ndarray]


@dataclass(frozen=True)
class Alert:
    """One alert: per `service` (capacity: its pool.max) or for the `database`
    (capacity: max_connections); `condition` is per bucket, `sustain` the
    `[analysis]` key of how long it must hold, `meaning` its words."""

    name: str
    scope: str
    sustain: str
    condition: Callable[[Column, int, AnalysisConfig, float], np.ndarray]
    meaning: Callable[[AnalysisConfig], str]


def _pool_waiting(col: Column, pool_max: int, a: AnalysisConfig, bucket: float) -> np.ndarray:
    # What a 1 s Prometheus scrape of waitingCount sees, not the bucket's peak:
    # a queue that forms and drains between scrapes is not the article's alert.
    return col("pool_waiting_sampled") > 0


def _pool_saturation(col: Column, pool_max: int, a: AnalysisConfig, bucket: float) -> np.ndarray:
    total = col("pool_total")
    capacity = col("pods_ready") * pool_max
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(capacity > 0, total / np.where(capacity > 0, capacity, 1.0) > a.pool_saturation_share,
                        total > 0)


def _pool_collapse(col: Column, pool_max: int, a: AnalysisConfig, bucket: float) -> np.ndarray:
    window = max(1, math.ceil(a.pool_collapse_window / bucket - 1e-9))
    peak = trailing_max(col("pool_total_max"), window)
    return ((peak >= POOL_COLLAPSE_MIN_PEAK) & (col("pool_total") < a.pool_collapse_share * peak)
            & (col("arrivals") > 0))


def _db_connections_high(col: Column, max_connections: int, a: AnalysisConfig, bucket: float) -> np.ndarray:
    return col("db_connections_max") > a.db_connections_share * max_connections


def _idle_in_transaction(col: Column, max_connections: int, a: AnalysisConfig, bucket: float) -> np.ndarray:
    # The article's `count(*) ... where state = 'idle in transaction'`, scraped each second:
    # a transaction's think time comes and goes between scrapes, an abandoned one stays.
    return col("db_idle_in_transaction_sampled") > 0


#: The alerts, in the order of same-time firings.
ALERTS: tuple[Alert, ...] = (
    Alert("pool_waiting", "service", "pool_waiting_for", _pool_waiting,
          lambda a: f"requests waiting for a pool connection for {a.pool_waiting_for:g} s"),
    Alert("pool_saturation", "service", "pool_saturation_for", _pool_saturation,
          lambda a: f"pool above {a.pool_saturation_share:.0%} of its maximum for {a.pool_saturation_for:g} s"),
    Alert("pool_collapse", "service", "pool_collapse_for", _pool_collapse,
          lambda a: (f"pool total below {a.pool_collapse_share:.0%} of its recent peak "
                     f"while traffic flows, for {a.pool_collapse_for:g} s")),
    Alert("db_connections_high", "database", "db_connections_for", _db_connections_high,
          lambda a: (f"database connections above {a.db_connections_share:.0%} "
                     f"of max_connections for {a.db_connections_for:g} s")),
    Alert("idle_in_transaction", "database", "idle_in_transaction_for", _idle_in_transaction,
          lambda a: f"sessions idle in transaction for {a.idle_in_transaction_for:g} s"),
)
ALERT_NAMES = tuple(a.name for a in ALERTS)


def alert_meanings(analysis: AnalysisConfig = AnalysisConfig()) -> dict[str, str]:
    """What each alert means, in words, with its thresholds."""
    return {alert.name: alert.meaning(analysis) for alert in ALERTS}


def episodes(condition: np.ndarray, bucket: float, sustain_s: float) -> list[tuple[float, Optional[float]]]:
    """(fired_at, resolved_at) of each run of true buckets that lasts `sustain_s` seconds.

    `resolved_at` is None when the condition still holds at the end of the series.
    """
    need = max(1, math.ceil(sustain_s / bucket - 1e-9))
    out: list[tuple[float, Optional[float]]] = []
    cond = np.concatenate(([False], np.asarray(condition, dtype=bool), [False]))
    edges = np.flatnonzero(np.diff(cond.astype(np.int8)))
    n = len(condition)
    for start, stop in zip(edges[0::2], edges[1::2]):
        if stop - start >= need:
            resolved = round(float(stop * bucket), 6) if stop < n else None
            out.append((round(float((start + need) * bucket), 6), resolved))
    return out


def trailing_max(values: np.ndarray, window: int) -> np.ndarray:
    """The maximum of each value and the `window - 1` before it."""
    if len(values) == 0:
        return values.copy()
    padded = np.concatenate((np.full(window - 1, -np.inf), values))
    return sliding_window_view(padded, window).max(axis=1)


def evaluate_alerts(series: dict[str, np.ndarray], bucket: float, pool_max: dict[str, int],
                    max_connections: int, analysis: AnalysisConfig = AnalysisConfig()) -> list[dict[str, Any]]:
    """Every firing of the alerts: `{name, service, fired_at, resolved_at}`, by time.

    `pool_max` maps each service to its pool.max; database alerts have service ""
    and read the rows of the first service (the database columns repeat on each).
    """
    found: list[dict[str, Any]] = []
    first = next(iter(pool_max), None)
    for alert in ALERTS:
        if alert.scope == "service":
            scopes = [(service, service, size) for service, size in pool_max.items()]
        else:
            scopes = [("", first, max_connections)] if first is not None else []
        for label, rows_of, capacity in scopes:
            cond = alert.condition(lambda key: service_column(series, key, rows_of), capacity, analysis, bucket)
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
