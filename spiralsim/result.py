"""The outcome of one simulation: the scenario, what was recorded and what it means."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np

from .metrics import Event, Recording

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .scenario import Scenario


@dataclass
class Result:
    """A finished run. `timeseries` holds the columns of timeseries.csv (one row per
    bucket and service), `events` the rows of events.csv, `summary` summary.json."""

    scenario: "Scenario"
    recording: Recording
    timeseries: dict[str, np.ndarray]
    events: list[Event]
    summary: dict[str, Any]

    def plot(self, path: Optional[str | Path] = None) -> "Figure":
        """The post-mortem dashboard; saved as PNG when `path` is given."""
        from .plots import dashboard

        return dashboard(self, path)


def simulate(scenario: "Scenario", progress: Optional[Callable[[float], None]] = None) -> Result:
    """Run `scenario` to its end and analyse it; `progress(fraction)` is called as time advances."""
    from .analysis import run_events, summarize
    from .model.world import World
    from .timeseries import build_timeseries

    recording = World(scenario).run(progress)
    series = build_timeseries(recording, scenario.database.max_connections)
    summary = summarize(scenario, recording, series)
    return Result(scenario, recording, series, run_events(recording, summary), summary)
