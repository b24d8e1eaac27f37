"""The article's five alerts, evaluated on a run's time series after the run.

Each alert is a per-bucket condition that must hold for a sustained time, as a
Prometheus rule with `for:` would: it fires once the condition has held for the
sustain time (at the end of the bucket that completes it) and resolves at the
start of the first bucket where the condition no longer holds. Times are
seconds of simulated time. Thresholds and sustain times come from the
scenario's `[analysis]` table (the keys of DEFAULTS), the article's values
when a key is absent.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .metrics import Event

#: The `[analysis]` keys of the alerts and the article's values (seconds, shares).
DEFAULTS: dict[str, float] = {
    "pool_waiting_for": 10.0,        # `pg_pool_waiting > 0` held this long
    "pool_saturation_share": 0.8,    # `pg_pool_total / (ready pods x pool.max)` above this share ...
    "pool_saturation_for": 30.0,     # ... held this long
    "pool_collapse_share": 0.2,      # `pg_pool_total` below this share of its trailing maximum, traffic flowing ...
    "pool_collapse_window": 600.0,   # ... over this trailing window ...
    "pool_collapse_for": 60.0,       # ... held this long
    "db_connections_share": 0.8,     # database connections above this share of max_connections ...
    "db_connections_for": 10.0,      # ... held this long
    "idle_in_transaction_for": 10.0,  # sessions idle in transaction above zero held this long
}
#: pool_collapse is not evaluated while the trailing maximum is below this.
POOL_COLLAPSE_MIN_PEAK = 2.0

ALERT_NAMES = ("pool_waiting", "pool_saturation", "pool_collapse", "db_connections_high", "idle_in_transaction")

#: Each alert's sustain-time key in DEFAULTS.
SUSTAIN_KEYS = {
    "pool_waiting": "pool_waiting_for",
    "pool_saturation": "pool_saturation_for",
    "pool_collapse": "pool_collapse_for",
    "db_connections_high": "db_connections_for",
    "idle_in_transaction": "idle_in_transaction_for",
}


def alert_settings(analysis: Any = None) -> dict[str, float]:
    """The alerts' thresholds from an `[analysis]` table (or None), the defaults for absent keys."""
    return {k: float(getattr(analysis, k, d)) for k, d in DEFAULTS.items()}


def alert_meanings(settings: Optional[dict[str, float]] = None) -> dict[str, str]:
    """What each alert means, in words, with its thresholds."""
    s = settings or DEFAULTS
    return {
        "pool_waiting": f"requests waiting for a pool connection for {s['pool_waiting_for']:g} s",
        "pool_saturation": (f"pool above {s['pool_saturation_share']:.0%} of its maximum "
                            f"for {s['pool_saturation_for']:g} s"),
        "pool_collapse": (f"pool total below {s['pool_collapse_share']:.0%} of its recent peak "
                          f"while traffic flows, for {s['pool_collapse_for']:g} s"),
        "db_connections_high": (f"database connections above {s['db_connections_share']:.0%} "
                                f"of max_connections for {s['db_connections_for']:g} s"),
        "idle_in_transaction": f"sessions idle in transaction for {s['idle_in_transaction_for']:g} s",
    }


ALERT_MEANINGS = alert_meanings()


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
                        bucket: float, s: dict[str, float]) -> dict[str, np.ndarray]:
    rows = _rows(series, service)
    total = series["pool_total"][rows]
    ready = series["pods_ready"][rows]
    capacity = ready * pool_max
    with np.errstate(divide="ignore", invalid="ignore"):
        saturated = np.where(capacity > 0, total / np.where(capacity > 0, capacity, 1.0) > s["pool_saturation_share"],
                             total > 0)
    window = max(1, math.ceil(s["pool_collapse_window"] / bucket - 1e-9))
    peak = trailing_max(series["pool_total_max"][rows], window)
    collapsed = ((peak >= POOL_COLLAPSE_MIN_PEAK) & (total < s["pool_collapse_share"] * peak)
                 & (series["arrivals"][rows] > 0))
    return {
        # What a 1 s Prometheus scrape of waitingCount sees, not the bucket's peak:
        # a queue that forms and drains between scrapes is not the article's alert.
        "pool_waiting": series["pool_waiting_sampled"][rows] > 0,
        "pool_saturation": saturated,
        "pool_collapse": collapsed,
    }


def _database_conditions(series: dict[str, np.ndarray], max_connections: int,
                         s: dict[str, float]) -> dict[str, np.ndarray]:
    rows = _rows(series, series["service"][0]) if len(series["service"]) else slice(0, 0)
    return {
        "db_connections_high": series["db_connections_max"][rows] > s["db_connections_share"] * max_connections,
        # The article's `count(*) ... where state = 'idle in transaction'`, scraped each second:
        # a transaction's think time comes and goes between scrapes, an abandoned one stays.
        "idle_in_transaction": series["db_idle_in_transaction_sampled"][rows] > 0,
    }


def evaluate_alerts(series: dict[str, np.ndarray], bucket: float, pool_max: dict[str, int],
                    max_connections: int, settings: Optional[dict[str, float]] = None) -> list[dict[str, Any]]:
    """Every firing of the five alerts: `{name, service, fired_at, resolved_at}`, by time.

    `pool_max` maps each service to its pool.max; database alerts have service "".
    `settings` are the thresholds (alert_settings); the article's values when None.
    """
    s = {**DEFAULTS, **(settings or {})}
    found: list[dict[str, Any]] = []
    conditions: list[tuple[str, str, np.ndarray]] = []
    for service, size in pool_max.items():
        for name, cond in _service_conditions(series, service, size, bucket, s).items():
            conditions.append((name, service, cond))
    for name, cond in _database_conditions(series, max_connections, s).items():
        conditions.append((name, "", cond))
    for name, service, cond in conditions:
        for fired, resolved in episodes(cond, bucket, s[SUSTAIN_KEYS[name]]):
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
