"""What a run records: bucketed counters, time-weighted gauges and latency histograms.

Memory is fixed by the number of buckets, never by the number of requests:
counters are counts per bucket, gauges integrate value x time per bucket and keep
each bucket's peak, latencies go into log-spaced histograms per bucket. The hot
path writes into preallocated `array.array`s (fixed size, 8 bytes a slot, and a
scalar update costs a third of a numpy item update); `finalize` hands numpy views
to analysis.
"""
from __future__ import annotations

import math
from array import array
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

FAILURE_KINDS: tuple[str, ...] = (
    "acquire_timeout",
    "connect_timeout",
    "too_many_clients",
    "client_timeout",
    "upstream_timeout",
    "no_ready_pod",
    "pod_crashed",
    "statement_timeout",
    "statement_error",
    "connection_terminated",
    "circuit_open",
    "shed",
)
KIND_INDEX: dict[str, int] = {k: i for i, k in enumerate(FAILURE_KINDS)}

# Latency histogram: log-spaced bins from 10 us to 10^4 s, 16 per decade
# (each bin ~15 % wide; percentiles interpolate geometrically inside a bin).
HIST_LO_S = 1e-5
HIST_BINS_PER_DECADE = 16
HIST_BINS = 9 * HIST_BINS_PER_DECADE
HIST_EDGES_S = HIST_LO_S * 10.0 ** (np.arange(HIST_BINS + 1) / HIST_BINS_PER_DECADE)
_LOG_LO = math.log(HIST_LO_S)
_BINS_PER_LN = HIST_BINS_PER_DECADE / math.log(10.0)

SERVICE_COUNTERS = (
    "arrivals", "attempts", "retries", "successes", "completions", "wasted",
    "connects", "refused_connects", "latency_sum", "acquires", "acquire_wait_sum",
    "cpu_busy", "closes", "queued",
    # what the database sees go wrong (issue: leaks, orphans, locks, server-side timeouts)
    "leaked", "orphaned", "foreign_statements", "lost_writes", "lock_waits", "lock_waits_done", "lock_wait_sum",
    "sessions_killed", "terminated",
)
SERVICE_LEVELS = (
    "pool_total", "pool_idle", "pool_waiting", "pods_ready", "pods_starting",
    "pods_warming", "pods_crashloop", "pods_terminating", "inflight", "db_connections",
    "requests_open", "pool_dead",
)
DB_LEVELS = ("connections", "active", "idle_in_transaction", "busy_cores")


def _zeros(n: int, typecode: str = "d") -> array:
    return array(typecode, bytes(array(typecode).itemsize * n))


def hist_bin(seconds: float) -> int:
    """The histogram bin of a latency in seconds (clamped to the range)."""
    if seconds <= HIST_LO_S:
        return 0
    k = int((math.log(seconds) - _LOG_LO) * _BINS_PER_LN)
    return k if k < HIST_BINS else HIST_BINS - 1


class Level:
    """A time-weighted gauge: integrates value x seconds per bucket, keeps each bucket's peak.

    Most changes land in the same bucket as the previous one; that path is a
    comparison with the bucket's end and three array updates.
    """

    __slots__ = ("value", "t_last", "area", "peak", "sample", "inv_bucket", "bucket", "b", "b_end")

    def __init__(self, n_buckets: int, bucket: float, value: float = 0.0):
        self.value = value
        self.t_last = 0.0
        self.area = _zeros(n_buckets + 1)
        self.peak = _zeros(n_buckets + 1)
        self.sample = _zeros(n_buckets + 1)  # the value at each bucket's end (a 1 s scrape)
        self.bucket = bucket
        self.inv_bucket = 1.0 / bucket
        self.peak[0] = value
        self.b = 0  # the bucket of t_last, and where it ends
        self.b_end = bucket

    def set(self, now: float, value: float) -> None:
        """The gauge takes `value` at time `now` (seconds)."""
        if now < self.b_end:
            b = self.b
            self.area[b] += self.value * (now - self.t_last)
        else:
            b = self._cross(now)
        self.t_last = now
        if value > self.peak[b]:
            self.peak[b] = value
        self.value = value

    def add(self, now: float, delta: float) -> None:
        """The gauge moves by `delta` at time `now`."""
        v = self.value
        if now < self.b_end:
            b = self.b
            self.area[b] += v * (now - self.t_last)
        else:
            b = self._cross(now)
        self.t_last = now
        v += delta
        self.value = v
        if v > self.peak[b]:
            self.peak[b] = v

    def _cross(self, now: float) -> int:
        """Integrate from t_last into a later bucket; returns the bucket of `now`."""
        v = self.value
        t = self.t_last
        bucket = self.bucket
        area, peak, sample = self.area, self.peak, self.sample
        b0 = self.b
        b1 = max(int(now * self.inv_bucket), b0 + 1)
        area[b0] += v * ((b0 + 1) * bucket - t)
        sample[b0] = v
        for b in range(b0 + 1, b1):
            area[b] += v * bucket
            sample[b] = v
            if v > peak[b]:
                peak[b] = v
        into = now - b1 * bucket
        if into > 0:
            area[b1] += v * into
            if v > peak[b1]:
                peak[b1] = v
        self.b = b1
        self.b_end = (b1 + 1) * bucket
        return b1

    def close(self, end: float) -> None:
        """Integrate up to `end` (the run's end) and sample the last, possibly short, bucket."""
        self.set(end, self.value)
        last = math.ceil(end * self.inv_bucket - 1e-9) - 1
        if last >= 0:
            self.sample[last] = self.value


class ServiceSeries:
    """One service's counters, gauges and latency histogram, all per bucket."""

    def __init__(self, name: str, n_buckets: int, bucket: float):
        self.name = name
        for c in SERVICE_COUNTERS:
            setattr(self, c, _zeros(n_buckets + 1))
        self.failures = [_zeros(n_buckets + 1) for _ in FAILURE_KINDS]
        for g in SERVICE_LEVELS:
            setattr(self, g, Level(n_buckets, bucket))
        self.hist = _zeros((n_buckets + 1) * HIST_BINS, "l")
        self.pod_waiting: list[Level] = []  # one per pod, for the worst pod
        self.crashes = 0
        self.first_failure: set[str] = set()

    def pod_waiting_level(self, n_buckets: int, bucket: float) -> Level:
        """A new per-pod waiting gauge (the worst pod column is their max)."""
        level = Level(n_buckets, bucket)
        self.pod_waiting.append(level)
        return level


class DatabaseSeries:
    """The shared database's gauges and refused connects per bucket."""

    def __init__(self, n_buckets: int, bucket: float):
        for g in DB_LEVELS:
            setattr(self, g, Level(n_buckets, bucket))
        self.refused = _zeros(n_buckets + 1)


class Event(NamedTuple):
    """One row of events.csv: what happened, when (seconds), to which service."""

    time: float
    service: str
    kind: str
    detail: str


class Recorder:
    """Handed to every component; the only place a run's observations go."""

    def __init__(self, duration: float, bucket: float, services: list[str]):
        self.duration = duration
        self.bucket = bucket
        self.inv_bucket = 1.0 / bucket
        self.n_buckets = max(1, math.ceil(duration / bucket - 1e-9))
        self.services = {s: ServiceSeries(s, self.n_buckets, bucket) for s in services}
        self.db = DatabaseSeries(self.n_buckets, bucket)
        self.events: list[Event] = []

    def level(self, value: float = 0.0) -> Level:
        """A fresh time-weighted gauge on this recorder's buckets."""
        return Level(self.n_buckets, self.bucket, value)

    def event(self, time: float, service: str, kind: str, detail: str) -> None:
        """Log a rare event (scale, crash, first refusal, incident); never per request."""
        self.events.append(Event(time, service, kind, detail))

    def finalize(self, end: float) -> "Recording":
        """Close every gauge at `end` and hand the arrays over as numpy."""
        n = self.n_buckets
        db = self.db
        for g in DB_LEVELS:
            getattr(db, g).close(end)
        per_service = {}
        for name, s in self.services.items():
            cols: dict[str, np.ndarray] = {}
            for c in SERVICE_COUNTERS:
                cols[c] = np.frombuffer(getattr(s, c), dtype=np.float64)[:n].copy()
            for k, arr in zip(FAILURE_KINDS, s.failures):
                cols["failures_" + k] = np.frombuffer(arr, dtype=np.float64)[:n].copy()
            for g in SERVICE_LEVELS:
                lv: Level = getattr(s, g)
                lv.close(end)
                cols[g + "_area"] = np.frombuffer(lv.area, dtype=np.float64)[:n].copy()
                cols[g + "_peak"] = np.frombuffer(lv.peak, dtype=np.float64)[:n].copy()
                cols[g + "_sample"] = np.frombuffer(lv.sample, dtype=np.float64)[:n].copy()
            worst = np.zeros(n)
            for lv in s.pod_waiting:
                lv.close(end)
                worst = np.maximum(worst, np.frombuffer(lv.peak, dtype=np.float64)[:n])
            cols["pool_waiting_worst_pod"] = worst
            hist = np.frombuffer(s.hist, dtype=np.int64).reshape(n + 1, HIST_BINS)[:n].copy()
            per_service[name] = ServiceRecording(name, cols, hist, s.crashes)
        dbcols = {}
        for g in DB_LEVELS:
            lv = getattr(db, g)
            dbcols[g + "_area"] = np.frombuffer(lv.area, dtype=np.float64)[:n].copy()
            dbcols[g + "_peak"] = np.frombuffer(lv.peak, dtype=np.float64)[:n].copy()
            dbcols[g + "_sample"] = np.frombuffer(lv.sample, dtype=np.float64)[:n].copy()
        dbcols["refused"] = np.frombuffer(db.refused, dtype=np.float64)[:n].copy()
        events = sorted(self.events, key=lambda e: e.time)  # stable: same-time order kept
        bucket_len = np.minimum(self.bucket, end - np.arange(n) * self.bucket).clip(min=0.0)
        return Recording(self.bucket, n, end, bucket_len, per_service, dbcols, events)


@dataclass
class ServiceRecording:
    """One service's raw per-bucket arrays (counters, gauge areas and peaks) and histogram."""

    name: str
    cols: dict[str, np.ndarray]
    hist: np.ndarray  # (n_buckets, HIST_BINS) request latency counts
    crashes: int
    open_requests: int = 0  # requests the model still held open at the end (conservation check)


@dataclass
class Recording:
    """Everything a run observed, before analysis: raw arrays, no derived figures."""

    bucket: float
    n_buckets: int
    end: float
    bucket_len: np.ndarray  # seconds each bucket actually covers (the last may be short)
    services: dict[str, ServiceRecording]
    db: dict[str, np.ndarray]
    events: list[Event] = field(default_factory=list)


def add_span(arr: array, inv_bucket: float, bucket: float, t0: float, t1: float) -> None:
    """Add the seconds of [t0, t1) to each bucket they cover (busy time of a CPU)."""
    b0 = int(t0 * inv_bucket)
    b1 = int(t1 * inv_bucket)
    last = len(arr) - 1
    if b0 == b1 or b0 >= last:
        arr[min(b0, last)] += t1 - t0
        return
    arr[b0] += (b0 + 1) * bucket - t0
    for b in range(b0 + 1, min(b1, last)):
        arr[b] += bucket
    if b1 <= last - 1:
        arr[b1] += t1 - b1 * bucket
