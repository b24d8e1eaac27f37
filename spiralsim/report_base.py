"""The post-mortem's formatting and its look-ups into one run (shared by report.py and
report_timeline.py)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Optional

import numpy as np

from .alerts import alert_meanings, alert_settings
from .analysis import degraded_buckets, first_degraded_s, service_column

if TYPE_CHECKING:
    from .result import Result

#: Runs longer than this show every time as h:mm:ss.
LONG_RUN_S = 3600.0


def mmss(seconds: float) -> str:
    """`mm:ss` (or `h:mm:ss` past an hour) of a simulated time."""
    s = int(math.floor(seconds + 1e-9))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60:02d}:{rest % 60:02d}"


def hmmss(seconds: float) -> str:
    """`h:mm:ss` of a simulated time, hours always shown."""
    s = int(math.floor(seconds + 1e-9))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}"


def span(seconds: float) -> str:
    """A duration as a person says it: `45 s`, `12 min 5 s`, `3 h 12 min`."""
    s = int(round(seconds))
    if s < 60:
        return f"{seconds:.3g} s" if seconds < 10 else f"{s} s"
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    if h:
        return f"{h} h {m} min" if m else f"{h} h"
    return f"{m} min {sec} s" if sec else f"{m} min"


def n_(x: float) -> str:
    return f"{int(round(x)):,}"


def pct(share: float) -> str:
    return f"{100.0 * share:.1f} %"


def ms_(ms: Optional[float]) -> str:
    if ms is None or not math.isfinite(ms):
        return "–"
    if ms >= 1000.0:
        return f"{ms / 1000.0:.2g} s" if ms < 10000.0 else f"{ms / 1000.0:.0f} s"
    return f"{ms:.1f} ms" if ms < 10.0 else f"{ms:.0f} ms"


def s_(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.3g} s"


def plural(n: float, one: str, many: Optional[str] = None) -> str:
    """`1 pod`, `3 pods`, `1,204 sessions`."""
    return f"{n_(n)} {one if int(round(n)) == 1 else (many or one + 's')}"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


class Run:
    """Look-ups into one run's series by service and time."""

    def __init__(self, result: "Result"):
        self.result = result
        self.sc = result.scenario
        self.summary = result.summary
        self.rec = result.recording
        self.services = list(self.sc.services)
        self.meanings = alert_meanings(alert_settings(self.sc.analysis))
        self.degraded = degraded_buckets(self.sc, result.timeseries)
        self.outage = first_degraded_s(self.degraded, self.rec.bucket)

    def clock(self, t: float) -> str:
        """A time of the run: h:mm:ss in runs of hours, mm:ss otherwise."""
        return hmmss(t) if self.rec.end > LONG_RUN_S else mmss(t)

    def at(self, key: str, service: str, t: float) -> float:
        i = min(self.rec.n_buckets - 1, max(0, int(t / self.rec.bucket + 1e-9)))
        return float(service_column(self.result.timeseries, key, service or self.services[0])[i])

    def service_figures(self, service: str, t: float) -> str:
        if not service or service not in self.sc.services:
            return self.db_figures(t)
        ready = self.at("pods_ready", service, t)
        in_use = self.at("pool_total", service, t) - self.at("pool_idle", service, t)
        capacity = ready * self.sc.services[service].pool.max
        parts = [f"{ready:.0f} pod{'' if round(ready) == 1 else 's'} ready", f"pool {in_use:.0f} of {capacity:.0f} in use",
                 f"{n_(self.at('pool_waiting_max', service, t))} waiting"]
        if "pool_dead" in self.result.timeseries:
            dead = self.at("pool_dead", service, t)
            if dead >= 0.5:
                parts.append(f"{dead:.0f} dead")
        p99 = self.at("latency_p99_ms", service, t)
        if math.isfinite(p99):
            parts.append(f"p99 {ms_(p99)}")
        return ", ".join(parts)

    def db_figures(self, t: float) -> str:
        conns = self.at("db_connections_max", "", t)
        text = f"database {conns:.0f} of {self.sc.database.max_connections} connections"
        if "db_idle_in_transaction" in self.result.timeseries:
            iit = self.at("db_idle_in_transaction", "", t)
            if iit >= 0.5:
                text += f", {iit:.0f} idle in transaction"
        return text

    def first_degraded_index(self) -> Optional[int]:
        return None if not self.degraded.any() else int(np.flatnonzero(self.degraded)[0])

    def last_trigger_end(self) -> float:
        return min(max((t["end"] for t in self.summary["triggers"]), default=0.0), self.rec.end)
