"""The overlay: the runs of a comparison on one figure, a colour per run, the baseline black.

Panels sharing the time axis (minutes, hours past 2 h, as the dashboard's):
goodput and failures per second, p99 latency (log; a line style per service
when there are several), callers waiting for a connection, the database's
connections, pods ready. Rates, waiting callers and pods are summed over the
services; the triggers' windows (of every run) are shaded. Each panel holds one
line per run (per run and service for latency) plus, for latency and the
database, the baseline's threshold and `max_connections` as dashed lines. The
key to the runs (name, outcome, overrides) is under the title; the baseline is
drawn wide under the variants, so a variant that follows it shows inside a
black halo.

Built on `matplotlib.figure.Figure` directly (no pyplot), matplotlib imported
only when a figure is drawn.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np

from ..analysis import Result, service_column
from ..report.dashboard import LINESTYLES, time_unit

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["PANELS", "colours", "overlay"]

WIDTH_IN = 14.0
PANEL_IN = 2.0
TITLE_IN = 0.7
KEY_ROW_IN = 0.25  # the key to the runs, under the title: a row per KEY_COLUMNS runs
KEY_COLUMNS = 2
DPI = 100
BASELINE_COLOUR = "black"
COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink",
           "tab:olive", "tab:cyan")
#: The baseline wide and under the variants: a variant that follows it shows as a line inside a black halo.
BASELINE_LINE: dict[str, Any] = {"lw": 2.8, "zorder": 2.0}
VARIANT_LINE: dict[str, Any] = {"lw": 1.2, "zorder": 2.5}
TRIGGER_SHADE = {"color": "0.5", "alpha": 0.12, "lw": 0}
LABEL_CHARS = 70  # a run's overrides in the legend, cut to this


def colours(names: list[str]) -> dict[str, str]:
    """The first run (the baseline) black, the others a colour each (cycling past nine)."""
    return {name: BASELINE_COLOUR if i == 0 else COLOURS[(i - 1) % len(COLOURS)] for i, name in enumerate(names)}


class _Run:
    """One run's series as plotted: x in the figure's unit, per-second rates, sums over services."""

    def __init__(self, result: Result, unit_s: float):
        rec = result.recording
        self.result = result
        self.series = result.timeseries
        self.services = list(result.scenario.services)
        self.x = np.arange(rec.n_buckets) * rec.bucket / unit_s
        self.seconds = np.where(rec.bucket_len > 0, rec.bucket_len, rec.bucket)

    def col(self, key: str, service: str) -> np.ndarray:
        return np.asarray(service_column(self.series, key, service), dtype=float)

    def total(self, key: str) -> np.ndarray:
        return sum((self.col(key, s) for s in self.services), np.zeros(len(self.x)))

    def rate(self, key: str) -> np.ndarray:
        return self.total(key) / self.seconds

    def database(self, key: str) -> np.ndarray:
        return self.col(key, self.services[0])  # the same on every service's rows


def _summed(key: str, rate: bool = False) -> Callable[[_Run], list[tuple[str, np.ndarray]]]:
    return lambda run: [("", run.rate(key) if rate else run.total(key))]


def _p99(run: _Run) -> list[tuple[str, np.ndarray]]:
    return [(s if len(run.services) > 1 else "", run.col("latency_p99_ms", s)) for s in run.services]


#: (name, y label, the lines of one run as (service or "", values), log scale)
PANELS: tuple[tuple[str, str, Callable[[_Run], list[tuple[str, np.ndarray]]], bool], ...] = (
    ("goodput", "goodput (req/s)", _summed("successes", rate=True), False),
    ("failures", "failures / s", _summed("failures", rate=True), False),
    ("latency p99", "p99 latency (ms)", _p99, True),
    ("pool waiting", "callers waiting for\na connection (mean)", _summed("pool_waiting"), False),
    ("database connections", "database connections", lambda run: [("", run.database("db_connections"))], False),
    ("pods ready", "pods ready", _summed("pods_ready"), False),
)


def _label(name: str, result: Result, overrides: Mapping[str, Any]) -> str:
    changes = ", ".join(overrides.get(name, ()))
    if len(changes) > LABEL_CHARS:
        changes = changes[: LABEL_CHARS - 1] + "…"
    return f"{name} ({result.summary['outcome']})" + (f": {changes}" if changes else "")


def _shade(ax: "Axes", results: Mapping[str, Result], unit_s: float) -> None:
    windows = sorted({(t["start"], t["end"]) for r in results.values() for t in r.summary["triggers"]})
    for i, (start, end) in enumerate(windows):
        ax.axvspan(start / unit_s, end / unit_s, label="trigger" if i == 0 else None, gid="trigger",
                   **TRIGGER_SHADE)


def _references(name: str, ax: "Axes", baseline: Result) -> None:
    """The baseline's p99 threshold and max_connections, dashed."""
    if name == "latency p99":
        ax.axhline(1000.0 * baseline.scenario.analysis.latency_p99_threshold, color="0.4", ls="--", lw=0.9,
                   label="p99 threshold")
    elif name == "database connections":
        ax.axhline(baseline.scenario.database.max_connections, color="tab:red", ls="--", lw=0.9,
                   label="max_connections")


def _panel(ax: "Axes", panel: tuple[str, str, Callable, bool], runs: dict[str, _Run],
           colour: dict[str, str], labels: dict[str, str]) -> list[str]:
    """One line per run (per run and service where the panel splits them); the services seen."""
    name, ylabel, lines, log = panel
    ax.set_label(name)  # how a caller finds a panel: [a.get_label() for a in fig.axes]
    services: list[str] = []
    for run_name, run in runs.items():
        for service, y in lines(run):
            if service not in services:
                services.append(service)
            style = LINESTYLES[services.index(service) % len(LINESTYLES)]
            label = labels[run_name] if services.index(service) == 0 else None
            ax.plot(run.x, y, color=colour[run_name], ls=style, label=label, gid=run_name,
                    **(BASELINE_LINE if colour[run_name] == BASELINE_COLOUR else VARIANT_LINE))
    _references(name, ax, next(iter(runs.values())).result)
    ax.set_ylabel(ylabel, fontsize=9)
    if log:
        ax.set_yscale("log")
    else:
        ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    return services


def _legend(ax: "Axes", services: list[str]) -> None:
    """A panel's own reference lines and, where it splits the services, their line styles
    (the runs and the shading are named once, at the top)."""
    from matplotlib.lines import Line2D

    handles, labels = ax.get_legend_handles_labels()
    kept = [(h, label) for h, label in zip(handles, labels) if h.get_gid() is None]
    kept += [(Line2D([], [], color="0.3", ls=LINESTYLES[i % len(LINESTYLES)]), s) for i, s in enumerate(services) if s]
    if kept:
        ax.legend([h for h, _ in kept], [label for _, label in kept], loc="upper left", bbox_to_anchor=(1.01, 1.0),
                  fontsize=8, framealpha=0.8)


def overlay(comparison: Any, path: Optional[str | Path] = None) -> "Figure":
    """The overlay figure of a `Comparison` (or of a {name: Result} mapping, the baseline first);
    saved as PNG when `path` is given. Its axes are labelled with the panels' names, and every
    run's lines carry its name as their gid."""
    from matplotlib.figure import Figure

    results: Mapping[str, Result] = getattr(comparison, "results", comparison)
    overrides: Mapping[str, Any] = getattr(comparison, "overrides", {})
    baseline = next(iter(results.values()))
    unit_s, unit = time_unit(max(r.recording.end for r in results.values()))
    runs = {name: _Run(r, unit_s) for name, r in results.items()}
    colour = colours(list(results))
    labels = {name: _label(name, r, overrides) for name, r in results.items()}
    end = max(r.recording.end for r in results.values())
    keys = len(results) + any(r.summary["triggers"] for r in results.values())
    key_in = KEY_ROW_IN * -(-keys // KEY_COLUMNS) + 0.1
    fig = Figure(figsize=(WIDTH_IN, TITLE_IN + key_in + PANEL_IN * len(PANELS)), dpi=DPI, layout="constrained")
    outer = fig.add_gridspec(2, 1, height_ratios=[key_in, PANEL_IN * len(PANELS)])
    head, body = fig.add_subfigure(outer[0]), fig.add_subfigure(outer[1])
    axes = body.subplots(len(PANELS), 1, sharex=True)
    for ax, panel in zip(axes, PANELS, strict=True):
        services = _panel(ax, panel, runs, colour, labels)
        _shade(ax, results, unit_s)
        _legend(ax, services)
    axes[-1].set_xlabel(f"time ({unit})")
    axes[-1].set_xlim(0, end / unit_s)
    sc = baseline.scenario
    fig.suptitle(f"{sc.title or sc.name}\n{sc.name}, seed {sc.seed}: the baseline (black) and "
                 f"{len(results) - 1} variant{'' if len(results) == 2 else 's'}, same seed", fontsize=13)
    handles, names = axes[0].get_legend_handles_labels()  # the runs, then "trigger"
    head.legend(handles, names, loc="center", ncols=KEY_COLUMNS, fontsize=9, frameon=False)
    if path is not None:
        fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
    return fig
