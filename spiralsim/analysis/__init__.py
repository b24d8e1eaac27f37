"""The analysis layer: what a run means, computed after it from the recording.

`timeseries.py` the columns of timeseries.csv, `outcome.py` degraded buckets and
the outcome rules, `alerts.py` the article's alerts, `summary.py` summary.json,
`result.py` the finished run. Never touches the model.
"""
from .alerts import ALERTS, alert_events, alert_meanings, evaluate_alerts
from .arithmetic import Arithmetic, arithmetic
from .outcome import Verdict, degraded_buckets, first_degraded_s, outcome, service_degraded
from .result import Result
from .summary import run_events, summarize, triggers
from .timeseries import build_timeseries, service_column

__all__ = [
    "ALERTS", "Arithmetic", "Result", "Verdict", "alert_events", "alert_meanings", "arithmetic", "build_timeseries",
    "degraded_buckets", "evaluate_alerts", "first_degraded_s", "outcome", "run_events", "service_column",
    "service_degraded", "summarize", "triggers",
]
