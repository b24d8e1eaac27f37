"""Whether a run was degraded, when, and how it ended: the outcome rules.

A bucket is degraded when any service's failure share or p99 passes the
`[analysis]` thresholds; the outcome (stable, recovered, metastable,
inconclusive) follows from the degraded buckets, the last trigger's end and
the settle time. Reads the recording and the time series after the run.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ..metrics import Recording, hist_percentiles
from ..scenario import Scenario
from ..vocabulary import FAILURE_KINDS
from .timeseries import service_column


def _service_degraded(failures: np.ndarray, successes: np.ndarray, p99_ms: np.ndarray,
                      error_rate: float, p99_s: float) -> np.ndarray:
    ended = failures + successes
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(ended > 0, failures / np.where(ended > 0, ended, 1.0), 0.0)
    slow = np.nan_to_num(p99_ms, nan=0.0) > 1000.0 * p99_s
    return (share > error_rate) | slow


def degraded_buckets(scenario: Scenario, series: dict[str, np.ndarray]) -> np.ndarray:
    """Per bucket: True when any service's failure share or p99 passes the `[analysis]` thresholds.

    The failure share is failures / (successes + failures) among the requests that
    ended in the bucket; a bucket where none ended is not degraded by it.
    """
    a = scenario.analysis
    out = None
    for name in scenario.services:
        col = lambda k: service_column(series, k, name)  # noqa: E731
        bad = _service_degraded(col("failures"), col("successes"), col("latency_p99_ms"),
                                a.error_rate_threshold, a.latency_p99_threshold)
        out = bad if out is None else out | bad
    return out if out is not None else np.zeros(0, dtype=bool)


def _window_degraded(scenario: Scenario, rec: Recording, lo: int, hi: int) -> bool:
    """Whether buckets [lo, hi) taken together pass the thresholds for any service."""
    a = scenario.analysis
    for s in rec.services.values():
        fails = sum(float(s.cols[k.column][lo:hi].sum()) for k in FAILURE_KINDS)
        ended = fails + float(s.cols["successes"][lo:hi].sum())
        if ended > 0 and fails / ended > a.error_rate_threshold:
            return True
        p99 = hist_percentiles(s.hist[lo:hi].sum(axis=0), 0.99)[0]
        if math.isfinite(p99) and p99 > a.latency_p99_threshold:
            return True
    return False


def classify(degraded: np.ndarray, bucket: float, end: float, last_end: float, settle: float,
             tail_degraded: bool) -> tuple[str, Optional[float]]:
    """(outcome, recovery_s) from the per-bucket degraded flags.

    `last_end` is when the last trigger ended (0 without triggers, at most `end`);
    `tail_degraded` whether the last `settle` seconds taken together are degraded.
    recovered: the final healthy stretch lasts `settle` past `last_end`; recovery_s
    is from `last_end` to the stretch's first bucket (0 if healthy all along).
    metastable: the last trigger ended `settle` or more before the end, yet the
    last `settle` is degraded. Otherwise inconclusive.
    """
    if not degraded.any():
        return "stable", None
    last_bad = int(np.flatnonzero(degraded)[-1])
    healthy_from = (last_bad + 1) * bucket
    if end - max(healthy_from, last_end) >= settle - 1e-9:
        return "recovered", round(max(0.0, healthy_from - last_end), 3)
    if end - last_end >= settle - 1e-9 and tail_degraded:
        return "metastable", None
    return "inconclusive", None


def outcome(scenario: Scenario, rec: Recording, degraded: np.ndarray,
            last_trigger_end: float) -> tuple[str, Optional[float]]:
    """(outcome, recovery_s) of a run whose last trigger ended at `last_trigger_end` (0 without one)."""
    end = rec.end
    last_end = min(last_trigger_end, end)
    settle = float(scenario.analysis.settle)
    tail_lo = max(0, int(math.floor((end - settle) / rec.bucket + 1e-9)))
    tail = _window_degraded(scenario, rec, tail_lo, rec.n_buckets)
    return classify(degraded, rec.bucket, end, last_end, settle, tail)


def first_degraded_s(degraded: np.ndarray, bucket: float) -> Optional[float]:
    """When the first degraded bucket starts (the outage), None if there is none."""
    if not degraded.any():
        return None
    return round(float(np.flatnonzero(degraded)[0]) * bucket, 6)
