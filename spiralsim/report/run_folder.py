"""The run folder: scenario.toml, timeseries.csv, events.csv, summary.json, dashboard.png, report.md.

Identical results give byte-identical files: no timestamps, no absolute paths,
fixed number formatting.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Iterable

import numpy as np

from ..analysis import Result
from ..metrics import Event
from ..scenario import scenario_to_toml
from .dashboard import dashboard
from .postmortem import render_report

FILES = ("scenario.toml", "timeseries.csv", "events.csv", "summary.json", "dashboard.png", "report.md")


def format_number(value: float) -> str:
    """A CSV cell: integers without a point, other floats to 6 significant digits, NaN empty."""
    v = float(value)
    if not math.isfinite(v):
        return "" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.6g}"


def _column_cells(values: np.ndarray) -> list[str]:
    if values.dtype.kind in "OUS":
        return [str(v) for v in values]
    v = values.astype(np.float64)
    if np.all(np.isfinite(v)) and np.all(v == np.round(v)) and np.all(np.abs(v) < 1e15):
        return v.astype(np.int64).astype(str).tolist()
    return [format_number(x) for x in v.tolist()]


def _csv_text(header: list[str], rows: Iterable[Iterable[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def timeseries_csv(series: dict[str, np.ndarray]) -> str:
    """timeseries.csv: the columns in the order of `series`, one row per bucket and service."""
    header = list(series)
    cells = [_column_cells(np.asarray(series[k])) for k in header]
    return _csv_text(header, zip(*cells))


def events_csv(events: list[Event]) -> str:
    """events.csv: time (seconds), service, kind, detail."""
    return _csv_text(["time", "service", "kind", "detail"],
                     ([_time_cell(e.time), e.service, e.kind, e.detail] for e in events))


def _time_cell(seconds: float) -> str:
    """An event time to the microsecond, shortest exact form (`120`, `125.5`, `130.000125`)."""
    t = round(float(seconds), 6)
    return str(int(t)) if t.is_integer() else repr(t)


def summary_json(summary: dict) -> str:
    """summary.json, indented, keys in the summary's own order."""
    return json.dumps(summary, indent=2, sort_keys=False, allow_nan=False, ensure_ascii=False) + "\n"


def _write(path: Path, text: str) -> None:
    path.write_bytes(text.encode("utf-8"))


def write_run(result: Result, out_dir: Path) -> Path:
    """Write the six files of a run into `out_dir` (created if needed) and return it."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _write(out_dir / "scenario.toml", scenario_to_toml(result.scenario))
    _write(out_dir / "timeseries.csv", timeseries_csv(result.timeseries))
    _write(out_dir / "events.csv", events_csv(result.events))
    _write(out_dir / "summary.json", summary_json(result.summary))
    dashboard(result, out_dir / "dashboard.png")
    _write(out_dir / "report.md", render_report(result))
    return out_dir
