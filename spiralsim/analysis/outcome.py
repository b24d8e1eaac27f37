"""Whether a run was degraded, when, and how it ended: the outcome rules.

A bucket is degraded for a service when its failure share or its p99 passes the
`[analysis]` thresholds. The outcome follows from the degraded buckets, the last
trigger's end and the settle time, and, for a run still degraded at its end,
from what keeps it down: a fault still in place (`stuck`), first attempts beyond
the arithmetic's capacity (`overloaded`), or only the load the system makes for
itself (`metastable`). Reads the recording and the time series after the run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..metrics import Recording, hist_percentiles
from ..scenario import Scenario
from ..vocabulary import FAILURE_KINDS
from .arithmetic import Arithmetic
from .timeseries import service_column

#: Attempts per request in the tail above which retries are what keeps a run down.
RETRY_AMPLIFICATION = 1.05


@dataclass(frozen=True)
class Verdict:
    """The outcome, the signed recovery time (s; negative: healthy before the last trigger
    ended) for `recovered`, and why a run still degraded at its end stays down."""

    outcome: str
    recovery_s: Optional[float] = None
    reason: Optional[str] = None


def service_degraded(scenario: Scenario, series: dict[str, np.ndarray], name: str) -> np.ndarray:
    """Per bucket: True when the service's failure share (among requests that ended in the
    bucket) or its p99 passes the `[analysis]` thresholds."""
    a = scenario.analysis
    failures, successes = service_column(series, "failures", name), service_column(series, "successes", name)
    ended = failures + successes
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(ended > 0, failures / np.where(ended > 0, ended, 1.0), 0.0)
    slow = np.nan_to_num(service_column(series, "latency_p99_ms", name), nan=0.0) > 1000.0 * a.latency_p99_threshold
    return (share > a.error_rate_threshold) | slow


def degraded_buckets(scenario: Scenario, series: dict[str, np.ndarray]) -> np.ndarray:
    """Per bucket: True when any service is degraded."""
    out = np.zeros(len(series["time"]) // max(1, len(scenario.services)), dtype=bool)
    for name in scenario.services:
        out |= service_degraded(scenario, series, name)
    return out


def window_degraded(scenario: Scenario, rec: Recording, name: str, lo: int, hi: int) -> bool:
    """Whether buckets [lo, hi) of one service, taken together, pass the thresholds."""
    a = scenario.analysis
    s = rec.services[name]
    fails = sum(float(s.cols[k.column][lo:hi].sum()) for k in FAILURE_KINDS)
    ended = fails + float(s.cols["successes"][lo:hi].sum())
    if ended > 0 and fails / ended > a.error_rate_threshold:
        return True
    p99 = hist_percentiles(s.hist[lo:hi].sum(axis=0), 0.99)[0]
    return bool(math.isfinite(p99) and p99 > a.latency_p99_threshold)


def first_degraded_s(degraded: np.ndarray, bucket: float) -> Optional[float]:
    """When the first degraded bucket starts, None if there is none."""
    if not degraded.any():
        return None
    return round(float(np.flatnonzero(degraded)[0]) * bucket, 6)


def _fault(rec: Recording, name: str) -> Optional[str]:
    """A fault still in place at the end that keeps `name` down, in words; None if none."""
    c = rec.services[name].cols
    leaked, dead = c["pool_leaked_sample"][-1], c["pool_dead_sample"][-1]
    if leaked >= 0.5:
        also = f", {dead:.0f} of them dead" if dead >= 0.5 else ""
        return f"`{name}`'s pools still hold {leaked:.0f} leaked connections{also}"
    open_tx = rec.db["orphans_open_sample"][-1]
    if open_tx >= 0.5:
        return (f"{open_tx:.0f} transaction{'s' if open_tx >= 1.5 else ''} that nobody will end "
                f"still hold{'' if open_tx >= 1.5 else 's'} {'their' if open_tx >= 1.5 else 'its'} locks")
    swapping = [e.data for e in rec.events if e.kind == "db_memory_peak" and e.data["end_mb"] > e.data["ram_mb"]]
    if swapping:  # what the backends grew stays until they end
        m = swapping[0]
        return (f"{m['server']} still holds {m['end_mb']:,.0f} MB in its {m['ram_mb']:,.0f} MB of RAM with no"
                f" statement running: it swaps")
    if c["pods_crashloop_sample"][-1] >= 0.5:
        return f"`{name}`'s pods are still crash-looping"
    frozen, held = c["instances_frozen_sample"][-1], c["pool_frozen_sample"][-1]
    if held >= 0.5 and c["refused_connects"][-60:].sum() > 0:  # and the database refuses the others
        return (f"`{name}`'s {frozen:.0f} frozen instances still hold {held:.0f} connections open until the "
                f"platform reaps them")
    return None


def _sustained_by(rec: Recording, name: str, lo: int) -> str:
    """What keeps a service down when neither a fault nor its offered load does."""
    c = rec.services[name].cols
    arrivals, attempts = float(c["arrivals"][lo:].sum()), float(c["attempts"][lo:].sum())
    seconds = float(rec.bucket_len[lo:].sum())
    if arrivals and attempts / arrivals > RETRY_AMPLIFICATION:
        return (f"retries: `{name}` made {attempts / arrivals:.2f} attempts per request over the last "
                f"{seconds:g} s, the load the system makes for itself")
    wasted = float(c["wasted"][lo:].sum())
    if wasted:
        return (f"work for callers that had already left: {wasted:,.0f} wasted attempts of `{name}` "
                f"in the last {seconds:g} s")
    return f"a backlog of `{name}` that does not drain, with no fault and within capacity"


def _still_down(scenario: Scenario, rec: Recording, arith: Arithmetic, down: list[str], lo: int) -> Verdict:
    """stuck, overloaded or metastable: the first cause found among the services down at the end."""
    for name in down:
        fault = _fault(rec, name)
        if fault:
            return Verdict("stuck", reason=fault)
    for name in down:
        limits = arith.services[name]
        if limits.offered >= limits.capacity:
            return Verdict("overloaded", reason=(f"`{name}` is offered {limits.offered:g} req/s and can serve about "
                                                 f"{limits.capacity:.0f} ({limits.bottleneck})"))
    return Verdict("metastable", reason=_sustained_by(rec, down[0], lo))


def outcome(scenario: Scenario, rec: Recording, series: dict[str, np.ndarray], arith: Arithmetic,
            last_trigger_end: float) -> Verdict:
    """The outcome of a run whose last trigger ended at `last_trigger_end` (0 without one).

    stable: never degraded. recovered: the final healthy stretch lasts `settle`
    past the last trigger's end (`recovery_s` from that end to the stretch's start,
    signed). inconclusive: it ended less than `settle` after the last trigger.
    Otherwise, with its last `settle` seconds degraded for some service: stuck,
    overloaded or metastable (see the module's docstring), else inconclusive.
    """
    degraded = degraded_buckets(scenario, series)
    if not degraded.any():
        return Verdict("stable")
    end, bucket = rec.end, rec.bucket
    last_end = min(last_trigger_end, end)
    settle = float(scenario.analysis.settle)
    healthy_from = (int(np.flatnonzero(degraded)[-1]) + 1) * bucket
    if end - max(healthy_from, last_end) >= settle - 1e-9:
        return Verdict("recovered", round(healthy_from - last_end, 3))
    if end - last_end < settle - 1e-9:
        return Verdict("inconclusive", reason=(f"the run ended {end - last_end:g} s after the last trigger, "
                                               f"less than settle ({settle:g} s)"))
    lo = max(0, int(math.floor((end - settle) / bucket + 1e-9)))
    down = [name for name in scenario.services if window_degraded(scenario, rec, name, lo, rec.n_buckets)]
    if not down:
        return Verdict("inconclusive",
                       reason="its last buckets are degraded, its last settle seconds as a whole are not")
    return _still_down(scenario, rec, arith, down, lo)
