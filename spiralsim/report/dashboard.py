"""The post-mortem dashboard: panels sharing a time axis in minutes (hours past 2 h).

On top, a strip of numbered markers: the rows of report.md's "What happened". Then
load, latency, failures, the pools, the callers waiting for a connection, PgBouncer
(only when a service has one), idle transactions and lock waits, the database's
connections, pods and CPU; a panel with nothing to show is left out (named at the
bottom), and the figure is as tall as its panels. The key to the shading and the event lines is under the title
(`dashboard_events.py`).

Built on `matplotlib.figure.Figure` directly (the Agg canvas, no pyplot state),
so it is safe in threads, notebooks and headless runs alike.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np

from ..analysis import Result, service_column
from ..vocabulary import FAILURE_KINDS
from .dashboard_defences import draw_defences, has_defences
from .dashboard_events import TimeMarks
from .dashboard_loop import LAG_QUIET_MS, draw_event_loop, loop_quiet
from .format import clock
from .headline import outcome_sentence

if TYPE_CHECKING:  # matplotlib loads when a dashboard is drawn, not when spiralsim is imported
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.gridspec import GridSpec

WIDTH_IN = 16.0
DPI = 100
#: A first guess of the plot area's width (the rest: y labels, the legends on the right);
#: the markers are then laid out for STRIP_SHARE of the width measured (a margin for the
#: layout's last adjustments: the lanes may change the strip's height).
PLOT_WIDTH_PX = 0.7 * WIDTH_IN * DPI
STRIP_SHARE = 0.98
TITLE_IN = 0.6  # the title, above the key
AXIS_IN = 1.0  # under the panels: the time axis and the note of panels left out
KEY_COLUMNS = 4  # the key to the shading, the lines and the markers, under the title
KEY_ROW_IN = 0.2

SERVICE_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive")
METRIC_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:gray")
LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
STATE_COLOURS = {"active": "tab:green", "idle": "tab:gray", "idle in transaction": "tab:red"}
#: Runs longer than this get an x axis in hours.
HOURS_AXIS_S = 7200.0
#: With several services, latency is drawn faint where a service ends fewer requests per
#: second (mean over FAINT_WINDOW buckets) than this share of the busiest one's median:
#: percentiles over a handful of requests are noise.
FAINT_TRAFFIC = 0.25
FAINT_WINDOW = 9
#: The CPU panel is left out when neither the pods nor the database ever pass this share.
CPU_QUIET = 0.05
POD_STATES = (("pods_ready", "ready"), ("pods_starting", "starting"), ("pods_warming", "warming"),
              ("pods_crashloop", "crashloop"), ("pods_terminating", "terminating"))


def time_unit(end: float) -> tuple[float, str]:
    """(seconds per x unit, its name): minutes, or hours for runs longer than 2 hours."""
    return (3600.0, "hours") if end > HOURS_AXIS_S else (60.0, "minutes")


class _Panels:
    """The run's series as plotted: minutes (or hours) on x, per-second rates, per service."""

    def __init__(self, result: Result):
        self.result = result
        self.series = result.timeseries
        self.services = list(result.scenario.services)
        self.bouncers = [n for n, s in result.scenario.services.items() if s.pgbouncer is not None]
        rec = result.recording
        self.unit_s, self.unit = time_unit(rec.end)
        self.x = np.arange(rec.n_buckets) * rec.bucket / self.unit_s  # x, in self.unit
        self.seconds = np.where(rec.bucket_len > 0, rec.bucket_len, rec.bucket)
        ended = {s: self.per_s("successes", s) + self.per_s("failures", s) for s in self.services}
        #: Below this many requests ended per second, a service's percentiles are drawn faint.
        self.few = FAINT_TRAFFIC * max((float(np.median(e)) for e in ended.values()), default=0.0)
        window = np.ones(FAINT_WINDOW) / FAINT_WINDOW
        self.busy = {s: (np.convolve(e, window, mode="same") >= self.few) if len(ended) > 1
                     else np.ones(len(e), dtype=bool) for s, e in ended.items()}

    def col(self, key: str, service: str) -> np.ndarray:
        return service_column(self.series, key, service)

    def per_s(self, key: str, service: str) -> np.ndarray:
        return self.col(key, service) / self.seconds

    def peak(self, key: str) -> float:
        """The largest value of a column over every service's rows (0 when all are empty)."""
        values = np.asarray(self.series[key], dtype=float)
        return float(np.nanmax(values, initial=0.0)) if len(values) else 0.0

    def style(self, service_i: int, metric_i: int) -> dict[str, Any]:
        """One service: colour per metric. Several: colour per service, line style per metric."""
        if len(self.services) == 1:
            return {"color": METRIC_COLOURS[metric_i % len(METRIC_COLOURS)], "linestyle": "-"}
        return {"color": SERVICE_COLOURS[service_i % len(SERVICE_COLOURS)],
                "linestyle": LINESTYLES[metric_i % len(LINESTYLES)]}

    def label(self, service: str, metric: str) -> str:
        return metric if len(self.services) == 1 else f"{service} {metric}"

    def lines(self, ax: "Axes", metrics: list[tuple[str, str]], scale: float = 1.0, rate: bool = False,
              skip_zero: bool = False) -> None:
        for si, name in enumerate(self.services):
            for mi, (key, label) in enumerate(metrics):
                y = (self.per_s(key, name) if rate else self.col(key, name)) * scale
                if skip_zero and not np.any(y > 0):
                    continue
                ax.plot(self.x, y, lw=1.2, label=self.label(name, label), **self.style(si, mi))

    def any_failures(self) -> bool:
        return any(np.any(self.col(k, s) > 0) for s in self.services for k in ("failures", "lost_writes"))


def _load(p: _Panels, ax: "Axes") -> None:
    p.lines(ax, [("arrivals", "offered"), ("attempts", "attempts"), ("successes", "goodput")], rate=True)
    ax.set_ylabel("requests / s")
    ax.set_ylim(bottom=0)


def _latency(p: _Panels, ax: "Axes") -> None:
    """p50 and p99 per service; faint where a service ended few requests (noise, not signal)."""
    for si, name in enumerate(p.services):
        busy = p.busy[name]
        for mi, (key, metric) in enumerate((("latency_p50_ms", "p50"), ("latency_p99_ms", "p99"))):
            y, label, style = p.col(key, name), p.label(name, metric), p.style(si, mi)
            faint = f"{label} (faint under {p.few:.2g} req/s)"
            if not busy.all():
                ax.plot(p.x, y, lw=0.7, alpha=0.35, zorder=1.5, label=None if busy.any() else faint, **style)
            if busy.any():
                ax.plot(p.x, np.where(busy, y, np.nan), lw=1.3, zorder=2.5,
                        label=label if busy.all() else faint, **style)
    threshold_ms = 1000.0 * p.result.scenario.analysis.latency_p99_threshold
    ax.axhline(threshold_ms, color="black", ls="--", lw=1, label=f"p99 threshold {threshold_ms:g} ms")
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms)")


def _failures(p: _Panels, ax: "Axes") -> None:
    if not p.any_failures():  # kept, small: "no failures" is a finding
        ax.text(0.5, 0.5, "no request failed", transform=ax.transAxes, ha="center", va="center",
                fontsize=10, color="dimgray")
        ax.set_yticks([])
        ax.set_ylabel("failures", fontsize=8)
        return
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
            if np.any(p.col("failures", name) > 0):
                ax.plot(p.x, p.per_s("failures", name), lw=1.2, label=f"{name} failures",
                        color=SERVICE_COLOURS[si % len(SERVICE_COLOURS)])
    for name in p.services:  # successes that were not: wrong data, not an error
        if np.any(p.col("lost_writes", name) > 0):
            ax.plot(p.x, p.per_s("lost_writes", name), lw=1.2, ls="--", color="black",
                    label=p.label(name, "writes lost (succeeded)"))
    ax.set_ylabel("failures / s")
    ax.set_ylim(bottom=0)


def _pool(p: _Panels, ax: "Axes") -> None:
    """Connections on a linear scale (the callers waiting have their own panel)."""
    for si, name in enumerate(p.services):
        total = p.col("pool_total", name)
        ax.plot(p.x, total, lw=1.2, label=p.label(name, "open"), **p.style(si, 0))
        ax.plot(p.x, total - p.col("pool_idle", name), lw=1.2, label=p.label(name, "in use"), **p.style(si, 1))
        if np.any(p.col("pool_dead", name) > 0):
            ax.plot(p.x, p.col("pool_dead", name), lw=1.2, color="black",
                    ls=LINESTYLES[si % len(LINESTYLES)], label=p.label(name, "dead (never given back)"))
        if np.any(p.col("leaked", name) > 0):
            ax.plot(p.x, np.cumsum(p.col("leaked", name)), lw=3.0, alpha=0.5, zorder=1.8, color="tab:pink",
                    ls=LINESTYLES[si % len(LINESTYLES)], label=p.label(name, "leaked (cumulative)"))  # under "in use"
    ax.set_ylabel("pool connections\n(sum over pods)")
    ax.set_ylim(bottom=0)


def _waiting(p: _Panels, ax: "Axes") -> None:
    p.lines(ax, [("pool_waiting", "waiting (mean)"), ("pool_waiting_max", "waiting (peak)")], skip_zero=True)
    ax.set_ylabel("callers waiting for\na connection")
    ax.set_ylim(bottom=0)


def _pgbouncer(p: _Panels, ax: "Axes") -> None:
    """SHOW POOLS of each service's PgBouncer: clients active and waiting, servers active and idle
    (one PgBouncer: a colour per gauge; several: the service's colour, a line style per gauge)."""
    gauges = (("cl_active", "cl_active"), ("cl_waiting", "cl_waiting (mean)"), ("cl_waiting_max", "cl_waiting (peak)"),
              ("sv_active", "sv_active"), ("sv_idle", "sv_idle"))
    for name in p.bouncers:
        si = p.services.index(name)
        for mi, (key, label) in enumerate(gauges):
            style = ({"color": METRIC_COLOURS[mi], "linestyle": ":" if key == "cl_waiting_max" else "-"}
                     if len(p.bouncers) == 1 else p.style(si, mi))
            ax.plot(p.x, p.col(key, name), lw=1.2, label=p.label(name, label), **style)
        size = p.result.scenario.services[name].pgbouncer.default_pool_size
        ax.axhline(size, color="black", ls=LINESTYLES[si % len(LINESTYLES)], lw=0.8,
                   label=p.label(name, f"default_pool_size {size}"))
    ax.set_ylabel("PgBouncer\nconnections")
    ax.set_ylim(bottom=0)


def _locks(p: _Panels, ax: "Axes") -> list["Axes"]:
    """Sessions idle in transaction (the database's), the lock waits they cause; the waits' mean on the right."""
    iit, colour = p.col("db_idle_in_transaction", p.services[0]), STATE_COLOURS["idle in transaction"]
    ax.fill_between(p.x, iit, color=colour, alpha=0.3, lw=0)  # one session is the story: keep it visible
    ax.plot(p.x, iit, color=colour, lw=1.6, label="sessions idle in transaction")
    for si, name in enumerate(p.services):
        if np.any(p.col("lock_waits", name) > 0):
            ax.plot(p.x, np.cumsum(p.col("lock_waits", name)), lw=1.2, drawstyle="steps-post",
                    color=SERVICE_COLOURS[si % len(SERVICE_COLOURS)] if len(p.services) > 1 else "tab:purple",
                    label=p.label(name, "statements that waited for a lock (cumulative)"))
    ax.set_ylabel("sessions /\nstatements" if p.peak("lock_waits") > 0 else "sessions")
    ax.set_ylim(bottom=0)
    if not np.any(np.isfinite(np.asarray(p.series["lock_wait_mean_ms"], dtype=float))):
        return []
    right = ax.twinx()
    for si, name in enumerate(p.services):
        colour = SERVICE_COLOURS[si % len(SERVICE_COLOURS)] if len(p.services) > 1 else "black"
        right.plot(p.x, p.col("lock_wait_mean_ms", name), ls="", marker="o", ms=3, color=colour,
                   label=p.label(name, "lock wait, mean of those ended (ms, right)"))
    right.set_ylabel("lock wait (ms)", fontsize=8)
    right.set_ylim(bottom=0)
    return [right]


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
    p.lines(ax, [(key, state) for key, state in POD_STATES], skip_zero=True)
    ax.set_ylabel("pods")
    ax.set_ylim(bottom=0)


def _cpu(p: _Panels, ax: "Axes") -> None:
    p.lines(ax, [("pod_cpu", "pod CPU")], scale=100.0)
    ax.plot(p.x, 100.0 * p.col("db_cpu", p.services[0]), color="black", lw=1.2,
            label="database CPU")
    refused = 100.0 * p.col("db_refused_connect_cpu", p.services[0])  # what the connects cost it, stacked
    opened = refused + 100.0 * p.col("db_connect_cpu", p.services[0])
    if np.any(opened > 0):
        ax.fill_between(p.x, refused, opened, color="0.75", lw=0, label="database CPU: connects")
    if np.any(refused > 0):
        ax.fill_between(p.x, 0.0, refused, color="tab:red", alpha=0.45, lw=0, label="database CPU: refused connects")
    ax.set_ylabel("CPU (%)")
    ax.set_ylim(0, 105)


#: (name, how it is drawn, its height in inches), top to bottom under the strip of events.
#: A drawing function may return its twin axes: their lines join its legend, which clears their ticks.
PANELS: tuple[tuple[str, Callable[[_Panels, "Axes"], Any], float], ...] = (
    ("load", _load, 2.2), ("latency", _latency, 2.2), ("failures", _failures, 2.0),
    ("defences", draw_defences, 1.8),
    ("pool", _pool, 1.9), ("waiting callers", _waiting, 1.6), ("pgbouncer", _pgbouncer, 1.8),
    ("transactions and locks", _locks, 1.6),
    ("database", _database, 2.2), ("pods", _pods, 1.6), ("CPU", _cpu, 1.6),
    ("event loop", draw_event_loop, 1.5),
)
NO_FAILURES_IN = 0.6  # the failures panel's height when it only says "no request failed"


def _constant_pods(p: _Panels) -> Optional[str]:
    """'api 2, jobs 1' when every service ran a fixed number of ready pods and none crashed."""
    counts = []
    for name in p.services:
        ready = p.col("pods_ready", name)
        others = any(np.any(p.col(k, name) > 0) for k, _ in POD_STATES[1:])
        crashed = p.result.summary["services"][name]["crashes"] or any(
            e.kind == "pod_crash" and e.service == name for e in p.result.events)
        if others or crashed or (len(ready) and np.ptp(ready) > 1e-9):
            return None
        counts.append(f"{name} {float(ready[0]) if len(ready) else 0.0:g}")
    if len(counts) == 1:
        counts[0] = counts[0].split()[-1]
    return ", ".join(counts)


def left_out(p: _Panels) -> dict[str, str]:
    """The panels with nothing to show, and why (said under the figure)."""
    out = {}
    if p.peak("pool_waiting_max") <= 0:
        out["waiting callers"] = "no caller waited for a connection"
    if p.peak("db_idle_in_transaction") < 1.0 and p.peak("lock_waits") <= 0:
        out["transactions and locks"] = "no session idle in transaction, no lock wait"
    pods = _constant_pods(p)
    if pods is not None:
        out["pods"] = f"{pods} ready throughout, no crash"
    if loop_quiet(p):
        out["event loop"] = f"every pod's event loop under {LAG_QUIET_MS:g} ms behind throughout"
    if max(p.peak("pod_cpu"), p.peak("db_cpu")) < CPU_QUIET:
        out["CPU"] = f"pods and database under {100 * CPU_QUIET:g} % CPU throughout"
    return out


def _title(result: Result) -> str:
    sc, summary = result.scenario, result.summary
    head = sc.title or sc.name
    verdict = outcome_sentence(summary, lambda t: clock(t, result.recording.end)).replace("`", "")
    return f"{head}\n{verdict}\n{sc.name}, seed {sc.seed}"


def _legend(ax: "Axes", extra: list["Axes"]) -> None:
    handles, labels = ax.get_legend_handles_labels()
    for other in extra:  # a twin's lines join the panel's legend
        more_handles, more_labels = other.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    if handles:
        right = 1.07 if extra or ax.child_axes else 1.01  # clear of a twin's or secondary axis' tick labels
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(right, 1.0), fontsize=8, framealpha=0.8)


def _fit(fig: "Figure", outer: "GridSpec", axes: list["Axes"], marks: TimeMarks,
         panels: list[tuple[str, Any, float]], key_in: float) -> None:
    """Heights in inches: the key, the strip (its lanes) and the panels; the figure as tall as they are."""
    heights = [marks.height_in] + [h for _, _, h in panels]
    fig.set_size_inches(WIDTH_IN, TITLE_IN + key_in + sum(heights) + AXIS_IN)
    outer.set_height_ratios([key_in, sum(heights) + AXIS_IN])
    axes[0].get_subplotspec().get_gridspec().set_height_ratios(heights)


def dashboard(result: Result, path: Optional[str | Path] = None) -> "Figure":
    """The post-mortem figure, 1600 px wide at 100 dpi and as tall as its panels; saved as
    PNG when `path` is given. `fig.axes` are labelled with the panels' names ("events" the strip)."""
    from matplotlib.figure import Figure

    p = _Panels(result)
    skipped = left_out(p)
    absent = (set() if p.bouncers else {"pgbouncer"}) | (  # not a finding: nothing to show it of
        set() if has_defences(result.scenario) else {"defences"})
    panels = [(name, draw, NO_FAILURES_IN if name == "failures" and not p.any_failures() else height)
              for name, draw, height in PANELS if name not in skipped and name not in absent]
    marks = TimeMarks(result, p.unit_s, PLOT_WIDTH_PX, DPI)
    key = marks.key()
    key_in = KEY_ROW_IN * -(-len(key) // KEY_COLUMNS) + 0.1
    fig = Figure(dpi=DPI, layout="constrained")
    outer = fig.add_gridspec(2, 1)
    head, body = fig.add_subfigure(outer[0]), fig.add_subfigure(outer[1])
    axes = list(body.subplots(len(panels) + 1, 1, sharex=True))
    axes[0].set_label("events")
    for (name, draw, _), ax in zip(panels, axes[1:], strict=True):
        ax.set_label(name)  # how a caller finds a panel: [a.get_label() for a in fig.axes]
        extra = draw(p, ax) or []
        ax.grid(True, alpha=0.3)
        _legend(ax, extra)
    head.legend([h for h, _ in key], [label for _, label in key], loc="lower center", ncols=KEY_COLUMNS,
                fontsize=8.5, frameon=False).set_gid("key")
    axes[-1].set_xlabel(f"time ({p.unit})")
    axes[-1].set_xlim(0, result.recording.end / p.unit_s)
    fig.suptitle(_title(result), fontsize=14)
    if skipped:
        body.supxlabel("Not shown: " + "; ".join(f"{name} ({why})" for name, why in skipped.items()) + ".",
                       fontsize=9, color="dimgray")
    _fit(fig, outer, axes, marks, panels, key_in)
    fig.get_layout_engine().execute(fig)  # the strip's width depends on the legends: measure it
    marks.place(STRIP_SHARE * axes[0].bbox.width)
    _fit(fig, outer, axes, marks, panels, key_in)
    marks.draw(axes)
    if path is not None:
        fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None})
    return fig
