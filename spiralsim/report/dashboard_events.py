"""The dashboard's marks in time: the triggers' shading, the impact window, a thin line
per marked event on every panel, and the report's numbered rows on the top strip.

The numbers are those of report.md's "What happened" table (`timeline.timeline`):
each row gets a small numbered marker at its time, staggered into lanes so that no
two overlap and kept whole inside the strip.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..analysis import Result, degraded_buckets
from ..vocabulary import EVENT_KINDS
from .run_view import RunView
from .timeline import MAX_ROWS, Row, timeline

if TYPE_CHECKING:  # matplotlib loads when a dashboard is drawn
    from matplotlib.axes import Axes

TRIGGER_COLOURS = {"traffic": "tab:orange", "slow_queries": "tab:red", "db_restart": "tab:purple",
                   "network_blip": "tab:brown", "node_lost": "tab:gray"}
TRIGGER_NAMES = {"traffic": "traffic spike", "slow_queries": "slow queries", "db_restart": "database restart",
                 "network_blip": "network blip", "node_lost": "node lost until evicted"}
TRIGGER_ALPHA = 0.15
IMPACT_COLOUR = "black"  # hatched: distinct from every trigger's fill
IMPACT_HATCH = "///"
IMPACT_ALPHA = 0.22
#: The marker edge of a row whose events draw no line (traffic phases, incidents: they are shaded).
UNMARKED = "gray"
ANALYSIS = "black"  # the marker edge of the rows the analysis adds (first degraded bucket, outcome)
MARKER_FONT = 7.5   # points
MARKER_PAD = 0.3    # around the number, a share of the font size
MARKER_GAP_PX = 4   # between two markers of one lane
LANE_IN = 0.25      # the strip's height per lane of markers
MAX_LANES = 5       # then markers shift right of their time rather than stack higher
STRIP_PAD_IN = 0.12


@dataclass(frozen=True)
class Mark:
    """One row's marker: where on the strip (x as a share of the axis, a lane from the top)."""

    row: Row
    x: float
    lane: int
    colour: str
    analysis: bool


def marker_width_px(number: int, dpi: float) -> float:
    """A generous width of the numbered box (digits and padding), in pixels."""
    return (0.62 * len(str(number)) + 2 * MARKER_PAD) * MARKER_FONT * dpi / 72.0 + 2.0


def row_colour(row: Row) -> str:
    """The colour of the row's line (its first marked event's kind)."""
    if not row.events:
        return ANALYSIS
    colours = [EVENT_KINDS[e.kind].colour for e in row.events]
    return next((c for c in colours if c is not None), UNMARKED)


def place(rows: list[Row], end: float, width_px: float, dpi: float) -> tuple[list[Mark], int]:
    """Markers in time order, each in the first lane where it clears the last one. Past
    MAX_LANES, a marker goes just right of its time in the lane that frees first (a
    burst of rows at one instant reads as a block, not a tower); a new lane only when
    that would run off the right edge. `width_px` is a lower bound of the strip's
    width, so the real gaps only grow."""
    marks: list[Mark] = []
    right: list[float] = []  # per lane, the right edge of its last marker (px)
    for row in sorted(rows, key=lambda r: (r.time, r.number)):
        half = marker_width_px(row.number, dpi) / 2.0
        at = min(max(row.time / end * width_px if end > 0 else 0.0, half), width_px - half)  # whole inside
        lane, x = next((i for i, r in enumerate(right) if r + MARKER_GAP_PX <= at - half), len(right)), at
        if lane == len(right) and len(right) >= MAX_LANES:
            lane = int(np.argmin(right))
            x = right[lane] + MARKER_GAP_PX + half
            if x + half > width_px:
                lane, x = len(right), at
        if lane == len(right):
            right.append(0.0)
        right[lane] = x + half
        marks.append(Mark(row, x / width_px, lane, row_colour(row), not row.events))
    return marks, max(len(right), 1)


def impact_windows(result: Result) -> list[tuple[float, float, str]]:
    """(start, end, label) in seconds: each service's `impact` from summary.json, services
    with the same window together; without that field, the run's degraded buckets."""
    services = result.summary["services"]
    end = result.recording.end
    if any("impact" in s for s in services.values()):
        found: dict[tuple[float, float], list[str]] = {}
        for name, s in services.items():
            impact = s.get("impact") or {}
            if impact.get("start_s") is not None:
                stop = impact.get("end_s")
                found.setdefault((float(impact["start_s"]), end if stop is None else float(stop)), []).append(name)
        several = len(services) > 1
        return [(a, b, "impact window" + (f" ({', '.join(names)})" if several else ""))
                for (a, b), names in found.items()]
    bad = np.flatnonzero(degraded_buckets(result.scenario, result.timeseries))
    if not len(bad):
        return []
    bucket = result.recording.bucket
    return [(bad[0] * bucket, min((bad[-1] + 1) * bucket, end), "impact window (degraded buckets)")]


def _kind_name(kind: str) -> str:
    k = EVENT_KINDS[kind]
    return k.label or ("alert fired" if kind == "alert_firing" else kind.replace("_", " "))


class TimeMarks:
    """What happened when, drawn over every panel; the numbered rows on the top strip."""

    def __init__(self, result: Result, unit_s: float, width_px: float, dpi: float):
        self.result = result
        self.unit_s = unit_s
        self.end = result.recording.end
        self.dpi = dpi
        self.rows = [r for r in timeline(RunView(result)) if r.number <= MAX_ROWS]
        self.place(width_px)

    def place(self, width_px: float) -> None:
        """Lay the markers out for a strip at least `width_px` wide."""
        self.width_px = width_px
        self.marks, self.lanes = place(self.rows, self.end, width_px, self.dpi)

    @property
    def height_in(self) -> float:
        return STRIP_PAD_IN + LANE_IN * max(self.lanes, 2)  # room for its label

    def draw(self, axes: list["Axes"]) -> None:
        """Shading and lines on every panel, the markers on the first."""
        self._shade(axes)
        self._impact(axes)
        self._lines(axes)
        self._markers(axes[0])

    def key(self) -> list[tuple[Any, str]]:
        """The (handle, label) pairs of the figure's key: shades, lines, markers."""
        return self._shade_key() + self._impact_key() + self._line_key() + self._marker_key()

    def _shade(self, axes: list["Axes"]) -> None:
        for t in self.result.summary["triggers"]:
            for ax in axes:
                ax.axvspan(t["start"] / self.unit_s, t["end"] / self.unit_s, lw=0, zorder=0,
                           color=TRIGGER_COLOURS.get(t["kind"], "tab:gray"), alpha=TRIGGER_ALPHA)

    def _shade_key(self) -> list[tuple[Any, str]]:
        """One entry per trigger kind, naming its services when there are several."""
        from matplotlib.patches import Patch

        who: dict[str, list[str]] = {}
        for t in self.result.summary["triggers"]:
            names = who.setdefault(t["kind"], [])
            if t["service"] and t["service"] not in names:
                names.append(t["service"])
        several = len(self.result.scenario.services) > 1
        return [(Patch(color=TRIGGER_COLOURS.get(kind, "tab:gray"), alpha=TRIGGER_ALPHA + 0.1, lw=0),
                 TRIGGER_NAMES.get(kind, kind) + (f" ({', '.join(names)})" if names and several else ""))
                for kind, names in who.items()]

    def _impact(self, axes: list["Axes"]) -> None:
        for start, stop, _ in impact_windows(self.result):
            for ax in axes:
                ax.axvspan(start / self.unit_s, stop / self.unit_s, facecolor="none", edgecolor=IMPACT_COLOUR,
                           hatch=IMPACT_HATCH, lw=0, alpha=IMPACT_ALPHA, zorder=0.5, gid="impact")

    def _impact_key(self) -> list[tuple[Any, str]]:
        from matplotlib.patches import Patch

        return [(Patch(facecolor="none", edgecolor=IMPACT_COLOUR, hatch=IMPACT_HATCH, alpha=IMPACT_ALPHA + 0.2),
                 label) for _, _, label in impact_windows(self.result)]

    def _lines(self, axes: list["Axes"]) -> None:
        """A thin line per event of a marked kind (EVENT_KINDS' colour), on every panel."""
        for e in self.result.events:
            colour = EVENT_KINDS[e.kind].colour
            if colour is not None:
                for ax in axes:
                    ax.axvline(e.time / self.unit_s, color=colour, lw=0.8, alpha=0.6, zorder=1)

    def _line_key(self) -> list[tuple[Any, str]]:
        """One entry per line colour, naming the kinds drawn in it."""
        from matplotlib.lines import Line2D

        kinds: dict[str, list[str]] = {}
        for e in self.result.events:
            colour = EVENT_KINDS[e.kind].colour
            if colour is not None and _kind_name(e.kind) not in kinds.setdefault(colour, []):
                kinds[colour].append(_kind_name(e.kind))
        return [(Line2D([], [], color=c, lw=1.2, alpha=0.8), ", ".join(names)) for c, names in kinds.items()]

    def _markers(self, ax: "Axes") -> None:
        ax.set_ylim(0, 1)
        ax.set_yticks([])
        ax.set_ylabel("report.md\nrow #", fontsize=8)
        for m in self.marks:
            style = "square" if m.analysis else "round"
            ax.text(m.x, 1.0 - (m.lane + 0.5) / self.lanes, str(m.row.number), transform=ax.transAxes,
                    ha="center", va="center", fontsize=MARKER_FONT, zorder=5, gid=f"row-{m.row.number}",
                    clip_on=False, bbox={"boxstyle": f"{style},pad={MARKER_PAD}", "facecolor": "white",
                                         "edgecolor": m.colour, "linewidth": 1.2})

    def _marker_key(self) -> list[tuple[Any, str]]:
        from matplotlib.lines import Line2D

        key = []
        if not all(m.analysis for m in self.marks):
            key.append((Line2D([], [], ls="", marker="o", ms=8, mfc="white", mec=UNMARKED),
                        "# a row of report.md's \"What happened\""))
        if any(m.analysis for m in self.marks):
            key.append((Line2D([], [], ls="", marker="s", ms=8, mfc="white", mec=ANALYSIS),
                        "# first degraded bucket, outcome"))
        return key

