"""What a run records while it runs: bucketed counters, time-weighted gauges and latency
histograms, handed to every component; `finalize` turns them into a `Recording`.

Memory is fixed by the number of buckets, never by the number of requests:
counters are counts per bucket, gauges integrate value x time per bucket and keep
each bucket's peak, latencies go into log-spaced histograms per bucket. The hot
path writes into preallocated lists (a service's counters, several updates a request: a list item's
`+= 1.0` takes about a quarter of an `array.array` item's time, which parses its float on every store) and
`array.array`s (the gauges' arrays, the histograms: 8 bytes a slot); `finalize` hands numpy arrays to analysis.
"""
from __future__ import annotations

import math

import numpy as np

from ..vocabulary import FAILURE_KINDS, REFUSED_AT_ONCE, TROUBLE_COUNTERS
from .histogram import HIST_BINS, LatencyBatch
from .level import Level, zeros
from .recording import Event, Recording, ServiceRecording

SERVICE_COUNTERS = (
    "arrivals", "attempts", "retries", "successes", "completions", "wasted",
    "connects", "refused_connects", "latency_sum", "acquires", "acquire_wait_sum",
    "cpu_busy", "closes", "queued", "slow", "retries_denied",
    "loop_lag_sum", "loop_lag_samples", "loop_lag_max",  # the pods' event-loop lag, sampled (the max: a max)
) + tuple("attempts_" + k for k in REFUSED_AT_ONCE) + TROUBLE_COUNTERS + ("lock_waits_done", "lock_wait_sum")
SERVICE_LEVELS = (
    "pool_total", "pool_idle", "pool_waiting", "pods_ready", "pods_starting",
    "pods_warming", "pods_crashloop", "pods_terminating", "inflight", "db_connections",
    "requests_open", "pool_dead", "pool_leaked",
    "breaker_state",        # the client's circuit breaker: 0 closed, 1 half-open, 2 open
    "concurrency_limit",    # the adaptive limits of the pods that have one, summed
    "limited_pods",         # how many pods have one (the column is the mean per pod)
    "instances_frozen",     # serverless: idle instances, frozen between requests
    "pool_frozen",          # the connections those hold open (counted when they froze)
    "cl_active", "cl_waiting", "sv_active", "sv_idle",  # PgBouncer's SHOW POOLS (0 without one)
    "pods_unready",         # ready pods a failed readiness probe took out of the balancer
)
#: Counters that are sums of others, worked out by `finalize` instead of counted a request at a time:
#: every attempt is a request's first (at its arrival, in its bucket) or a retry, and every completion
#: a success or a failure of one kind (`Client._outcome` counts each in the bucket it ends in).
DERIVED_COUNTERS = ("attempts", "completions")
#: `iit_oldest_since` holds when the oldest session idle in transaction became so (-1: none).
DB_LEVELS = ("connections", "active", "idle_in_transaction", "busy_cores", "orphans_open", "iit_oldest_since")
#: Gauges kept per pod as well: callers waiting, connections checked out (or being opened).
POD_LEVELS = ("waiting", "in_use")


class ServiceSeries:
    """One service's counters, gauges and latency histogram, all per bucket."""

    def __init__(self, name: str, n_buckets: int, bucket: float):
        self.name = name
        for c in SERVICE_COUNTERS:  # lists of floats: updated once or more a request (see above)
            if c not in DERIVED_COUNTERS:
                setattr(self, c, [0.0] * (n_buckets + 1))
        self.failures = [[0.0] * (n_buckets + 1) for _ in FAILURE_KINDS]
        for g in SERVICE_LEVELS:
            setattr(self, g, Level(n_buckets, bucket))
        self.hist = zeros((n_buckets + 1) * HIST_BINS, "l")
        self.stmt_hist = zeros((n_buckets + 1) * HIST_BINS, "l")  # its statements' times, as the app sees them
        self.latencies = LatencyBatch(self.hist)  # the request path's way into `hist` (flush before reading it)
        self.stmt_times = LatencyBatch(self.stmt_hist)  # and into `stmt_hist`
        self.n_buckets = n_buckets
        self.bucket = bucket
        self.pods: dict[str, list[Level]] = {k: [] for k in POD_LEVELS}  # one gauge per pod
        self.crashes = 0
        self.first_failure: set[str] = set()
        self.pool_max = 0  # connections one pod's pools may hold (pool.max x its pools), set by its service

    def completed(self, b0: int, b1: int) -> float:
        """Requests that ended in buckets [b0, b1): the successes and the failures of every kind."""
        return sum(self.successes[b0:b1]) + sum(sum(kind[b0:b1]) for kind in self.failures)

    def pod_level(self, kind: str) -> Level:
        """A new gauge of one pod (`waiting` or `in_use`), kept beside the service's."""
        level = Level(self.n_buckets, self.bucket)
        self.pods[kind].append(level)
        return level


class DatabaseSeries:
    """One database server's gauges, refused connects and connects' CPU per bucket (the primary's, or a
    read replica's); the CPU as a share of its cores, in the bucket the backend started."""

    def __init__(self, n_buckets: int, bucket: float):
        for g in DB_LEVELS:
            setattr(self, g, Level(n_buckets, bucket))
        self.refused = zeros(n_buckets + 1)
        self.connect_cpu = zeros(n_buckets + 1)          # core-seconds / cores, connects that got a slot
        self.refused_connect_cpu = zeros(n_buckets + 1)  # the same, refused connects


class Recorder:
    """Handed to every component; the only place a run's observations go."""

    def __init__(self, duration: float, bucket: float, services: list[str], max_connections: int,
                 replicas: int = 0):
        """`replicas`: read replicas, each a `DatabaseSeries` of its own beside the primary's `db`."""
        self.duration = duration
        self.max_connections = max_connections
        self.bucket = bucket
        self.inv_bucket = 1.0 / bucket
        self.n_buckets = max(1, math.ceil(duration / bucket - 1e-9))
        self.services = {s: ServiceSeries(s, self.n_buckets, bucket) for s in services}
        self.db = DatabaseSeries(self.n_buckets, bucket)
        self.replicas = [DatabaseSeries(self.n_buckets, bucket) for _ in range(replicas)]
        self.events: list[Event] = []

    def level(self, value: float = 0.0) -> Level:
        """A fresh time-weighted gauge on this recorder's buckets."""
        return Level(self.n_buckets, self.bucket, value)

    def event(self, time: float, service: str, kind: str, detail: str, data: object = None) -> None:
        """Log a rare event (scale, crash, first refusal, incident); never per request."""
        self.events.append(Event(time, service, kind, detail, data))

    def finalize(self, end: float) -> "Recording":
        """Close every gauge at `end` and hand the arrays over as numpy."""
        n = self.n_buckets
        per_service = {}
        for name, s in self.services.items():
            counts = {c: np.array(getattr(s, c)[:n], dtype=np.float64) for c in SERVICE_COUNTERS
                      if c not in DERIVED_COUNTERS}
            failures = [np.array(arr[:n], dtype=np.float64) for arr in s.failures]
            counts["attempts"] = counts["arrivals"] + counts["retries"]  # whole numbers: the sums are exact
            counts["completions"] = counts["successes"] + sum(failures)
            cols: dict[str, np.ndarray] = {c: counts[c] for c in SERVICE_COUNTERS}
            for kind, arr in zip(FAILURE_KINDS, failures):
                cols[kind.column] = arr
            for g in SERVICE_LEVELS:
                lv: Level = getattr(s, g)
                lv.close(end)
                cols[g + "_area"] = np.frombuffer(lv.area, dtype=np.float64)[:n].copy()
                cols[g + "_peak"] = np.frombuffer(lv.peak, dtype=np.float64)[:n].copy()
                cols[g + "_sample"] = np.frombuffer(lv.sample, dtype=np.float64)[:n].copy()
            pods = {}
            for kind, levels in s.pods.items():
                for lv in levels:
                    lv.close(end)
                pods[kind] = {part: np.array([np.frombuffer(getattr(lv, part), dtype=np.float64)[:n]
                                              for lv in levels]).reshape(len(levels), n)
                              for part in ("peak", "sample")}
            cols["pool_waiting_worst_pod"] = pods["waiting"]["peak"].max(axis=0, initial=0.0)
            s.latencies.flush()
            s.stmt_times.flush()
            hist = np.frombuffer(s.hist, dtype=np.int64).reshape(n + 1, HIST_BINS)[:n].copy()
            stmt_hist = np.frombuffer(s.stmt_hist, dtype=np.int64).reshape(n + 1, HIST_BINS)[:n].copy()
            per_service[name] = ServiceRecording(name, cols, hist, s.crashes, pod_in_use=pods["in_use"]["sample"],
                                                 stmt_hist=stmt_hist, pool_max=s.pool_max)
        events = sorted(self.events, key=lambda e: e.time)  # stable: same-time order kept
        bucket_len = np.minimum(self.bucket, end - np.arange(n) * self.bucket).clip(min=0.0)
        return Recording(self.bucket, n, end, bucket_len, per_service, self._db_cols(self.db, end),
                         self.max_connections, events, [self._db_cols(r, end) for r in self.replicas])

    def _db_cols(self, db: DatabaseSeries, end: float) -> dict[str, np.ndarray]:
        """One server's gauges (area, peak, sample), closed at `end`, its refused connects and connects' CPU."""
        n = self.n_buckets
        cols = {}
        for g in DB_LEVELS:
            lv = getattr(db, g)
            lv.close(end)
            cols[g + "_area"] = np.frombuffer(lv.area, dtype=np.float64)[:n].copy()
            cols[g + "_peak"] = np.frombuffer(lv.peak, dtype=np.float64)[:n].copy()
            cols[g + "_sample"] = np.frombuffer(lv.sample, dtype=np.float64)[:n].copy()
        for c in ("refused", "connect_cpu", "refused_connect_cpu"):
            cols[c] = np.frombuffer(getattr(db, c), dtype=np.float64)[:n].copy()
        return cols


def add_span(arr: list[float], inv_bucket: float, bucket: float, t0: float, t1: float, sign: float = 1.0) -> None:
    """Add the seconds of [t0, t1) to each bucket they cover (busy time of a CPU); `sign` -1 takes them back."""
    b0 = int(t0 * inv_bucket)
    b1 = int(t1 * inv_bucket)
    last = len(arr) - 1
    if b0 == b1 or b0 >= last:
        arr[min(b0, last)] += sign * (t1 - t0)
        return
    arr[b0] += sign * ((b0 + 1) * bucket - t0)
    for b in range(b0 + 1, min(b1, last)):
        arr[b] += sign * bucket
    if b1 <= last - 1:
        arr[b1] += sign * (t1 - b1 * bucket)
