"""Look-ups into one finished run by service and time, shared by the post-mortem's parts."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from ..analysis import Result, alert_meanings, degraded_buckets, service_column
from .format import clock, count, ms


class RunView:
    """Look-ups into one run's series by service and time."""

    def __init__(self, result: "Result"):
        self.result = result
        self.sc = result.scenario
        self.summary = result.summary
        self.rec = result.recording
        self.services = list(self.sc.services)
        self.meanings = alert_meanings(self.sc.analysis)
        self.degraded = degraded_buckets(self.sc, result.timeseries)
        self.unit = "second" if self.rec.bucket == 1.0 else "bucket"  # what one degraded bucket is called

    def clock(self, t: float) -> str:
        """A time of the run: h:mm:ss in runs of hours, mm:ss otherwise."""
        return clock(t, self.rec.end)

    def at(self, key: str, service: str, t: float) -> float:
        i = min(self.rec.n_buckets - 1, max(0, int(t / self.rec.bucket + 1e-9)))
        return float(service_column(self.result.timeseries, key, service or self.services[0])[i])

    def service_figures(self, service: str, t: float) -> str:
        if not service or service not in self.sc.services:
            return self.db_figures(t)
        ready = round(self.at("pods_ready", service, t))
        in_use = self.at("pool_in_use", service, t)
        size = self.sc.services[service].pool.max
        if not ready:
            pool = f"{in_use:.0f} connections in use"
        else:
            pool = (f"pool {in_use:.0f} of {size} in use" if ready == 1
                    else f"pools {in_use:.0f} of {ready} x {size} in use")
        parts = [f"{ready} pod{'' if ready == 1 else 's'} ready", pool,
                 f"{count(self.at('pool_waiting_max', service, t))} waiting"]
        dead = self.at("pool_dead", service, t)
        if dead >= 0.5:
            parts.append(f"{dead:.0f} dead")
        p99 = self.at("latency_p99_ms", service, t)
        if math.isfinite(p99):
            parts.append(f"p99 {ms(p99)}")
        return ", ".join(parts)

    def db_figures(self, t: float) -> str:
        conns = self.at("db_connections_max", "", t)
        text = f"database {conns:.0f} of {self.rec.max_connections} connections"
        iit = self.at("db_idle_in_transaction", "", t)
        if iit >= 0.5:
            text += f", {iit:.0f} idle in transaction"
        return text

    def first_degraded_index(self) -> Optional[int]:
        return None if not self.degraded.any() else int(np.flatnonzero(self.degraded)[0])

    def last_trigger_end(self) -> float:
        return min(max((t["end"] for t in self.summary["triggers"]), default=0.0), self.rec.end)
