"""A finished run as the report and the user see it: the scenario, what was recorded and what it means."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..metrics import Event, Recording
from ..scenario import Scenario


@dataclass
class Result:
    """A finished run. `timeseries` holds the columns of timeseries.csv (one row per
    bucket and service), `events` the rows of events.csv, `summary` summary.json."""

    scenario: Scenario
    recording: Recording
    timeseries: dict[str, np.ndarray]
    events: list[Event]
    summary: dict[str, Any]
