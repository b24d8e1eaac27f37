"""Run a scenario: build the model, simulate it, analyse the recording."""
from __future__ import annotations

from typing import Callable, Optional

from .analysis import Result, build_timeseries, run_events, summarize
from .model.world import World
from .scenario import Scenario


def simulate(scenario: Scenario, progress: Optional[Callable[[float], None]] = None) -> Result:
    """Run `scenario` to its end and analyse it; `progress(fraction)` is called as time advances."""
    recording = World(scenario).run(progress)
    series = build_timeseries(recording)
    summary = summarize(scenario, recording, series)
    return Result(scenario, recording, series, run_events(recording, summary), summary)
