"""What a run observed, handed from the model to the analysis: per-bucket arrays, the
latency histograms and the events, no derived figures."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np


class Event(NamedTuple):
    """One row of events.csv: what happened, when (seconds), to which service.

    `data` carries the facts behind `detail` for the report and the dashboard (a
    trigger, a scale decision), so nothing parses the text back; it is not written.
    """

    time: float
    service: str
    kind: str
    detail: str
    data: Any = None


@dataclass
class ServiceRecording:
    """One service's raw per-bucket arrays (counters, gauge areas and peaks) and histogram."""

    name: str
    cols: dict[str, np.ndarray]
    hist: np.ndarray  # (n_buckets, HIST_BINS) request latency counts
    crashes: int
    pod_in_use: np.ndarray  # (pods ever created, n_buckets): each pod's connections checked out at each bucket's end
    open_requests: int = 0  # requests the model still held open at the end (conservation check)
    stmt_hist: np.ndarray | None = None  # (n_buckets, HIST_BINS) its statements' times (None: not recorded)
    pool_max: int = 0  # connections one pod's pools may hold (pool.max x its pools): pool_utilization's unit


@dataclass
class Recording:
    """Everything a run observed, before analysis: raw arrays, no derived figures."""

    bucket: float
    n_buckets: int
    end: float
    bucket_len: np.ndarray  # seconds each bucket actually covers (the last may be short)
    services: dict[str, ServiceRecording]
    db: dict[str, np.ndarray]
    max_connections: int  # the database's slots, for the readers of its share
    events: list[Event] = field(default_factory=list)
    replicas: list[dict[str, np.ndarray]] = field(default_factory=list)  # each read replica's arrays, as `db`
