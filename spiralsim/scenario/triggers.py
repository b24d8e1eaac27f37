"""A scenario's triggers as data: every incident and every traffic phase, described
once here and put into words at the edges (events.csv, summary.json, the report)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .models import Scenario


@dataclass(frozen=True)
class Incident:
    """An `[[incidents]]` window; `services` empty means every service."""

    kind: str
    start: float  # s
    end: float    # s
    factor: Optional[float] = None
    services: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()
    ramp: bool = False  # the factor grows from 1 at start to `factor` at end
    pods: int = 1  # node_lost: the pods of each service the lost node ran

    def factor_at(self, t: float) -> float:
        """The slow_queries factor at `t` inside the window (1 outside it)."""
        if self.factor is None or not self.start <= t < self.end:
            return 1.0
        if not self.ramp:
            return self.factor
        return 1.0 + (self.factor - 1.0) * (t - self.start) / (self.end - self.start)

    def event_detail(self) -> str:
        """events.csv's detail: `slow_queries x50 on a,b`, `slow_queries x1 -> x20 (ramps)`, `db_restart`."""
        factor = (f" x1 -> x{self.factor:g} (ramps)" if self.ramp else f" x{self.factor:g}") \
            if self.factor is not None else ""
        where = f" on {','.join(self.endpoints)}" if self.endpoints else ""
        return self.kind + factor + where + (f" ({self._pods()})" if self.kind == "node_lost" else "")

    def _pods(self) -> str:
        return f"{self.pods} pod{'s' if self.pods > 1 else ''} of each service"

    def summary_detail(self) -> str:
        """summary.json's trigger detail (the kind is a field of its own): `x50 on a, b`, `x1 -> x20 (ramp)`."""
        factor = (f"x1 -> x{self.factor:g} (ramp)" if self.ramp else f"x{self.factor:g}") \
            if self.factor is not None else ""
        where = f" on {', '.join(self.endpoints)}" if self.endpoints else ""
        return (factor + where + (self._pods() if self.kind == "node_lost" else "")).strip()


@dataclass(frozen=True)
class Phase:
    """A traffic phase of one service: from `base` to `rate` requests/s during [start, end)."""

    service: str
    start: float  # s
    end: float    # s
    base: float   # the service's base rate, req/s
    rate: float   # req/s
    ramp: bool

    @property
    def is_trigger(self) -> bool:
        """A phase above the base rate is a trigger of the outcome; one below is not."""
        return self.rate > self.base

    def start_detail(self) -> str:
        """events.csv's phase_start detail: `rate 50 -> 800 req/s (steps)` or `(ramps)`."""
        return f"rate {self.base:g} -> {self.rate:g} req/s ({'ramps' if self.ramp else 'steps'})"

    def end_detail(self) -> str:
        """events.csv's phase_end detail: `rate 800 -> 50 req/s`."""
        return f"rate {self.rate:g} -> {self.base:g} req/s"

    def summary_detail(self) -> str:
        """summary.json's trigger detail: `rate 50 -> 800 req/s`, ` (ramp)` when it ramps."""
        return f"rate {self.base:g} -> {self.rate:g} req/s" + (" (ramp)" if self.ramp else "")


def incidents(scenario: Scenario) -> list[Incident]:
    """The incidents in file order."""
    return [Incident(i.kind, float(i.start), float(i.end), i.factor, tuple(i.services or ()),
                     tuple(i.endpoints or ()), i.ramp, i.pods or 1) for i in scenario.incidents]


def phases(scenario: Scenario) -> list[Phase]:
    """Every service's traffic phases, by service in file order, then by start."""
    return [Phase(name, float(p.start), float(p.end), svc.traffic.rate, p.rate, p.ramp)
            for name, svc in scenario.services.items()
            for p in sorted(svc.traffic.phases, key=lambda p: p.start)]
