"""The post-mortem dashboard: seven panels sharing a time axis in minutes (hours past 2 h).

Built on `matplotlib.figure.Figure` directly (the Agg canvas, no pyplot state),
so it is safe in threads, notebooks and headless runs alike.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from ..analysis import Result, service_column
from ..vocabulary import EVENT_KINDS, FAILURE_KINDS
from .format import span

if TYPE_CHECKING:  # matplotlib loads when a dashboard is drawn, not when spiralsim is imported
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FIGSIZE_IN = (16.0, 18.0)
DPI = 100  # 1600 x 1800 px
PANELS = 7

SERVICE_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive")
METRIC_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:gray")
LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
TRIGGER_COLOURS = {"traffic": "tab:orange", "slow_queries": "tab:red", "db_restart": "tab:purple",
                   "network_blip": "tab:brown"}
STATE_COLOURS = {"active": "tab:green", "idle": "tab:gray", "idle in transaction": "tab:red"}
#: Runs longer than this get an x axis in hours.
HOURS_AXIS_S = 7200.0
MAX_EVENT_LABELS = 16
LABEL_LANES = 3  # labels closer than LABEL_GAP (share of the x range) go one lane lower
LABEL_GAP = 0.02


def time_unit(end: float) -> tuple[float, str]:
    """(seconds per x unit, its name): minutes, or hours for runs longer than 2 hours."""
    return (3600.0, "hours") if end > HOURS_AXIS_S else (60.0, "minutes")


class _Panels:
    """The series of one service, as plotted: minutes (or hours) on x, per-second rates."""

    def __init__(self, result: Result):
        self.result = result
        self.series = result.timeseries
        self.services = list(result.scenario.services)
        rec = result.recording
        self.unit_s, self.unit = time_unit(rec.end)
        self.x = np.arange(rec.n_buckets) * rec.bucket / self.unit_s  # x, in self.unit
        self.seconds = np.where(rec.bucket_len > 0, rec.bucket_len, rec.bucket)

    def col(self, key: str, service: str) -> np.ndarray:
        return service_column(self.series, key, service)

    def per_s(self, key: str, service: str) -> np.ndarray:
        return self.col(key, service) / self.seconds

    def style(self, service_i: int, metric_i: int) -> dict[str, Any]:
        """One service: colour per metric. Several: colour per service, line style per metric."""
        if len(self.services) == 1:
            return {"color": METRIC_COLOURS[metric_i % len(METRIC_COLOURS)], "linestyle": "-"}
        return {"color": SERVICE_COLOURS[service_i % len(SERVICE_COLOURS)],
                "linestyle": LINESTYLES[metric_i % len(LINESTYLES)]}

    def label(self, service: str, metric: str) -> str:
        return metric if len(self.services) == 1 else f"{service} {metric}"

    def lines(self, ax: "Axes", metrics: list[tuple[str, str]], scale: float = 1.0, rate: bool = False) -> None:
        for si, name in enumerate(self.services):
            for mi, (key, label) in enumerate(metrics):
                y = (self.per_s(key, name) if rate else self.col(key, name)) * scale
                ax.plot(self.x, y, lw=1.2, label=self.label(name, label), **self.style(si, mi))


def _load(p: _Panels, ax: "Axes") -> None:
    p.lines(ax, [("arrivals", "offered"), ("attempts", "attempts"), ("successes", "goodput")], rate=True)
    ax.set_ylabel("requests / s")
    ax.set_ylim(bottom=0)


def _latency(p: _Panels, ax: "Axes") -> None:
    p.lines(ax, [("latency_p50_ms", "p50"), ("latency_p99_ms", "p99")])
    threshold_ms = 1000.0 * p.result.scenario.analysis.latency_p99_threshold
    ax.axhline(threshold_ms, color="black", ls="--", lw=1, label=f"p99 threshold {threshold_ms:g} ms")
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms)")


def _failures(p: _Panels, ax: "Axes") -> None:
    stacks, labels, colours = [], [], []
    for kind in FAILURE_KINDS:
        y = sum(p.per_s(kind.column, s) for s in p.services)
        if np.any(y > 0):
            stacks.append(y)
            labels.append(kind.name)
            colours.append(kind.colour)
    if stacks:
        ax.stackplot(p.x, *stacks, labels=labels, colors=colours, alpha=0.85)
    if len(p.services) > 1:
        for si, name in enumerate(p.services):
            ax.plot(p.x, p.per_s("failures", name), lw=1.2, label=f"{name} failures",
                    color=SERVICE_COLOURS[si % len(SERVICE_COLOURS)])
    for si, name in enumerate(p.services):  # successes that were not: wrong data, not an error
        if np.any(p.col("lost_writes", name) > 0):
            ax.plot(p.x, p.per_s("lost_writes", name), lw=1.2, ls="--", color="black",
                    label=p.label(name, "writes lost (succeeded)"))
    ax.set_ylabel("failures / s")
    ax.set_ylim(bottom=0)


def _pool(p: _Panels, ax: "Axes") -> None:
    p.lines(ax, [("pool_total", "pool total"), ("pool_idle", "pool idle"),
                 ("pool_waiting", "waiting (mean)"), ("pool_waiting_max", "waiting (max)")])
    for si, name in enumerate(p.services):
        if np.any(p.col("pool_dead", name) > 0):
            ax.plot(p.x, p.col("pool_dead", name), lw=1.2, color="black",
                    ls=LINESTYLES[si % len(LINESTYLES)], label=p.label(name, "dead (never given back)"))
        if np.any(p.col("leaked", name) > 0):
            ax.plot(p.x, np.cumsum(p.col("leaked", name)), lw=1.2, color="tab:pink",
                    ls=LINESTYLES[si % len(LINESTYLES)], label=p.label(name, "leaked (cumulative)"))
    ax.set_ylabel("connections / callers\n(sum over pods)")
    waiting = max(float(np.nanmax(p.col("pool_waiting_max", s), initial=0.0)) for s in p.services)
    total = max(float(np.nanmax(p.col("pool_total_max", s), initial=0.0)) for s in p.services)
    if waiting > 5 * max(total, 1.0):  # a queue far longer than the pool: keep both readable
        ax.set_yscale("symlog", linthresh=max(total, 1.0))
    ax.set_ylim(bottom=0)


def _database(p: _Panels, ax: "Axes") -> None:
    """pg_stat_activity: connections by state (stacked), per service when several, % of max on the right."""
    db = p.result.scenario.database
    alert_share = p.result.scenario.analysis.db_connections_share
    first = p.services[0]
    states = [("db_active", "active"), ("db_idle", "idle"), ("db_idle_in_transaction", "idle in transaction")]
    ax.stackplot(p.x, *[p.col(k, first) for k, _ in states], labels=[label for _, label in states],
                 colors=[STATE_COLOURS[label] for _, label in states], alpha=0.45)
    ax.plot(p.x, p.col("db_connections", first), color="black", lw=1.2, label="all connections")
    if len(p.services) > 1:
        for si, name in enumerate(p.services):
            ax.plot(p.x, p.col("db_connections_service", name), lw=1.0, ls="--",
                    color=SERVICE_COLOURS[si % len(SERVICE_COLOURS)], label=f"{name} connections")
    ax.axhline(db.max_connections, color="tab:red", lw=1.2, label=f"max_connections {db.max_connections}")
    ax.axhline(alert_share * db.max_connections, color="tab:red", ls="--", lw=1,
               label=f"{100 * alert_share:g} % (db_connections_high)")
    usable = db.max_connections - db.superuser_reserved_connections
    if usable != db.max_connections:
        ax.axhline(usable, color="tab:red", ls=":", lw=1, label=f"usable by apps {usable}")
    ax.set_ylabel("database connections\n(by state)")
    ax.set_ylim(0, 1.08 * max(db.max_connections, float(np.nanmax(p.col("db_connections_max", first), initial=0))))
    m = float(db.max_connections)
    pct = ax.secondary_yaxis("right", functions=(lambda c: 100.0 * c / m, lambda q: q * m / 100.0))
    pct.set_ylabel("% of max_connections", fontsize=8)
    pct.tick_params(labelsize=8)


def _pods(p: _Panels, ax: "Axes") -> None:
    p.lines(ax, [("pods_ready", "ready"), ("pods_starting", "starting"), ("pods_warming", "warming"),
                 ("pods_crashloop", "crashloop"), ("pods_terminating", "terminating")])
    ax.set_ylabel("pods")
    ax.set_ylim(bottom=0)


def _cpu(p: _Panels, ax: "Axes") -> None:
    p.lines(ax, [("pod_cpu", "pod CPU")], scale=100.0)
    ax.plot(p.x, 100.0 * p.col("db_cpu", p.services[0]), color="black", lw=1.2,
            label="database CPU")
    ax.set_ylabel("CPU (%)")
    ax.set_ylim(0, 105)


PANEL_FUNCS = (_load, _latency, _failures, _pool, _database, _pods, _cpu)


def _shade_triggers(result: Result, axes: list["Axes"]) -> None:
    unit_s, _ = time_unit(result.recording.end)
    for t in result.summary["triggers"]:
        colour = TRIGGER_COLOURS.get(t["kind"], "tab:gray")
        for ax in axes:
            ax.axvspan(t["start"] / unit_s, t["end"] / unit_s, color=colour, alpha=0.12, lw=0)


def _mark_events(result: Result, axes: list["Axes"]) -> None:
    """A thin line per key event on every panel; a label on the top panel for the first few."""
    marked = [e for e in result.events if EVENT_KINDS[e.kind].colour is not None]
    seen: set[tuple[str, str, str]] = set()
    labels = 0
    lanes = [-np.inf] * LABEL_LANES  # the x of the last label in each lane
    unit_s, _ = time_unit(result.recording.end)
    gap = LABEL_GAP * result.recording.end / unit_s
    top = axes[0]
    from matplotlib.transforms import blended_transform_factory

    trans = blended_transform_factory(top.transData, top.transAxes)
    for e in marked:
        x = e.time / unit_s
        kind = EVENT_KINDS[e.kind]
        colour = kind.colour
        for ax in axes:
            ax.axvline(x, color=colour, lw=0.8 if colour != "dimgray" else 0.6, alpha=0.6)
        scaled = e.kind in ("scale_up", "scale_down") and e.data is not None
        key = (e.kind, e.service, e.detail if e.kind.startswith("alert") or scaled else "")
        if key in seen or labels >= MAX_EVENT_LABELS:
            continue
        seen.add(key)
        text = f"alert {e.detail}" if e.kind == "alert_firing" else (kind.label or e.kind)
        if scaled:  # the autoscaler's decision: "scale 1→5"
            text = f"scale {e.data.current}→{e.data.desired}"
        if e.service and len(result.scenario.services) > 1:
            text += f" ({e.service})"
        lane = next((i for i, last in enumerate(lanes) if x - last >= gap), labels % LABEL_LANES)
        lanes[lane] = x
        top.text(x, 0.98 - lane * 0.33, text + " ", transform=trans, rotation=90, va="top", ha="right",
                 fontsize=8, color=colour)
        labels += 1


def _title(result: Result) -> str:
    sc, summary = result.scenario, result.summary
    head = sc.title or sc.name
    outcome = summary["outcome"]
    if summary["recovery_s"] is not None:
        outcome += f" ({span(summary['recovery_s'])} after the last trigger)"
    return f"{head} — {outcome}\n{sc.name}, seed {sc.seed}"


def dashboard(result: Result, path: Optional[str | Path] = None) -> "Figure":
    """The post-mortem figure (1600 x 1800 px at 100 dpi); saved as PNG when `path` is given."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE_IN, dpi=DPI, layout="constrained")
    axes = list(fig.subplots(PANELS, 1, sharex=True))
    p = _Panels(result)
    for func, ax in zip(PANEL_FUNCS, axes):
        func(p, ax)
        ax.grid(True, alpha=0.3)
    _shade_triggers(result, axes)
    _mark_events(result, axes)
    for ax in axes:
        handles, _ = ax.get_legend_handles_labels()
        if handles:
            right = 1.07 if ax.child_axes else 1.01  # clear of a secondary axis' tick labels
            ax.legend(loc="upper left", bbox_to_anchor=(right, 1.0), fontsize=8, framealpha=0.8)
    unit_s, unit = time_unit(result.recording.end)
    axes[-1].set_xlabel(f"time ({unit})")
    axes[-1].set_xlim(0, result.recording.end / unit_s)
    fig.suptitle(_title(result), fontsize=14)
    if path is not None:
        fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
    return fig
