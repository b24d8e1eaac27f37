"""What an incident cost one service, and when things were quiet again.

The impact window runs from the start of the service's first degraded bucket to
the end of its last. Bad requests are the failed and the slow (succeeded, but
over the latency threshold); they are measured against the error budget of the
SLO (`[analysis] slo` over `slo_window`), scaled from this run's request rate.
Settled: from the start of the final stretch in which no pod of the service is
starting, warming or crash-looping, none of its callers waits for a connection,
and the database is below the db_connections_high share.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..metrics import Recording
from ..scenario import Scenario
from .timeseries import service_column


def quiet(scenario: Scenario, rec: Recording, series: dict[str, np.ndarray], name: str) -> np.ndarray:
    """Per bucket: the service's pods and pool and the database are at rest."""
    col = lambda key: service_column(series, key, name)  # noqa: E731
    busy_pods = col("pods_starting") + col("pods_warming") + col("pods_crashloop")
    db_high = col("db_connections_max") > scenario.analysis.db_connections_share * rec.max_connections
    return (busy_pods == 0) & (col("pool_waiting_sampled") == 0) & ~db_high


def settled_s(flags: np.ndarray, bucket: float) -> Optional[float]:
    """The start of the final stretch of True flags (0 if all are True); None if the last is False."""
    if len(flags) == 0 or not flags[-1]:
        return None
    unquiet = np.flatnonzero(~flags)
    return round(float(unquiet[-1] + 1) * bucket, 6) if len(unquiet) else 0.0


def impact(scenario: Scenario, rec: Recording, series: dict[str, np.ndarray], name: str,
           degraded: np.ndarray, failed: int) -> dict[str, Any]:
    """summary.json's `impact` of one service: its window, the bad requests, the budget burned, settled."""
    bucket = rec.bucket
    bad_at = np.flatnonzero(degraded)
    c = rec.services[name].cols
    slow = int(round(float(c["slow"].sum())))
    requests = float(c["arrivals"].sum())
    a = scenario.analysis
    budget = (1.0 - a.slo) * requests * a.slo_window / rec.end if rec.end > 0 else 0.0
    return {
        "start_s": round(float(bad_at[0]) * bucket, 6) if len(bad_at) else None,
        "end_s": round(min(float(bad_at[-1] + 1) * bucket, rec.end), 6) if len(bad_at) else None,
        "degraded_s": round(float(rec.bucket_len[degraded].sum()), 6),
        "failed": failed,
        "slow": slow,
        "budget_share": round((failed + slow) / budget, 4) if budget > 0 else None,
        "settled_s": settled_s(quiet(scenario, rec, series, name), bucket),
    }
