"""The article's five alerts, evaluated on a run's time series after the run.

Each alert is a per-bucket condition that must hold for a sustained time, as a
Prometheus rule with `for:` would: it fires once the condition has held for the
sustain time (at the end of the bucket that completes it) and resolves at the
start of the first bucket where the condition no longer holds. Times are
seconds of simulated time.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .metrics import Event

#: `pg_pool_waiting > 0` held this long (seconds).
POOL_WAITING_SUSTAIN_S = 10.0
#: `pg_pool_total / (ready pods x pool.max)` above this share ...
POOL_SATURATION_SHARE = 0.8
#: ... held this long (seconds).
POOL_SATURATION_SUSTAIN_S = 30.0
#: `pg_pool_total` below this share of its trailing maximum while traffic flows ...
POOL_COLLAPSE_SHARE = 0.2
#: ... over this trailing window (seconds) ...
POOL_COLLAPSE_WINDOW_S = 600.0
#: ... held this long (seconds); not evaluated while the trailing maximum is below 2.
POOL_COLLAPSE_SUSTAIN_S = 60.0
POOL_COLLAPSE_MIN_PEAK = 2.0
#: Database connections above this share of max_connections ...
DB_CONNECTIONS_SHARE = 0.8
#: ... held this long (seconds).
DB_CONNECTIONS_SUSTAIN_S = 10.0
#: Sessions idle in transaction above zero held this long (seconds).
IDLE_IN_TRANSACTION_SUSTAIN_S = 10.0

ALERT_NAMES = ("pool_waiting", "pool_saturation", "pool_collapse", "db_connections_high", "idle_in_transaction")

ALERT_MEANINGS = {
    "pool_waiting": f"requests waiting for a pool connection for {POOL_WAITING_SUSTAIN_S:g} s",
    "pool_saturation": f"pool above {POOL_SATURATION_SHARE:.0%} of its maximum for {POOL_SATURATION_SUSTAIN_S:g} s",
    "pool_collapse": f"pool total below {POOL_COLLAPSE_SHARE:.0%} of its recent peak while traffic flows",
    "db_connections_high": f"database connections above {DB_CONNECTIONS_SHARE:.0%} of max_connections",
    "idle_in_transaction": "sessions idle in transaction",
}


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


def _rows(series: dict[str, np.ndarray], service: str) -> np.ndarray:
    return series["service"] == service


def _service_conditions(series: dict[str, np.ndarray], service: str, pool_max: int,
                        bucket: float) -> dict[str, np.ndarray]:
    rows = _rows(series, service)
    total = series["pool_total"][rows]
    ready = series["pods_ready"][rows]
    capacity = ready * pool_max
    with np.errstate(divide="ignore", invalid="ignore"):
        saturated = np.where(capacity > 0, total / np.where(capacity > 0, capacity, 1.0) > POOL_SATURATION_SHARE,
                             total > 0)
    window = max(1, math.ceil(POOL_COLLAPSE_WINDOW_S / bucket - 1e-9))
    peak = trailing_max(series["pool_total_max"][rows], window)
    collapsed = ((peak >= POOL_COLLAPSE_MIN_PEAK) & (total < POOL_COLLAPSE_SHARE * peak)
                 & (series["arrivals"][rows] > 0))
    return {
        # What a 1 s Prometheus scrape of waitingCount sees, not the bucket's peak:
        # a queue that forms and drains between scrapes is not the article's alert.
        "pool_waiting": series["pool_waiting_sampled"][rows] > 0,
        "pool_saturation": saturated,
        "pool_collapse": collapsed,
    }


def _database_conditions(series: dict[str, np.ndarray], max_connections: int) -> dict[str, np.ndarray]:
    rows = _rows(series, series["service"][0]) if len(series["service"]) else slice(0, 0)
    return {
        "db_connections_high": series["db_connections_max"][rows] > DB_CONNECTIONS_SHARE * max_connections,
        # The article's `count(*) ... where state = 'idle in transaction'`, scraped each second:
        # a transaction's think time comes and goes between scrapes, an abandoned one stays.
        "idle_in_transaction": series["db_idle_in_transaction_sampled"][rows] > 0,
    }


SUSTAIN_S = {
    "pool_waiting": POOL_WAITING_SUSTAIN_S,
    "pool_saturation": POOL_SATURATION_SUSTAIN_S,
    "pool_collapse": POOL_COLLAPSE_SUSTAIN_S,
    "db_connections_high": DB_CONNECTIONS_SUSTAIN_S,
    "idle_in_transaction": IDLE_IN_TRANSACTION_SUSTAIN_S,
}


def evaluate_alerts(series: dict[str, np.ndarray], bucket: float, pool_max: dict[str, int],
                    max_connections: int) -> list[dict[str, Any]]:
    """Every firing of the five alerts: `{name, service, fired_at, resolved_at}`, by time.

    `pool_max` maps each service to its pool.max; database alerts have service "".
    """
    found: list[dict[str, Any]] = []
    conditions: list[tuple[str, str, np.ndarray]] = []
    for service, size in pool_max.items():
        for name, cond in _service_conditions(series, service, size, bucket).items():
            conditions.append((name, service, cond))
    for name, cond in _database_conditions(series, max_connections).items():
        conditions.append((name, "", cond))
    for name, service, cond in conditions:
        for fired, resolved in episodes(cond, bucket, SUSTAIN_S[name]):
            found.append({"name": name, "service": service, "fired_at": fired, "resolved_at": resolved})
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
