"""The post-mortem in Markdown: the outcome, the cascade in time order, why, the figures.

Every figure comes from the run (summary, series, events) or the scenario; every
sentence from an event, a trigger, the outcome or the scenario's description.
"""
from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from .alerts import ALERT_MEANINGS
from .analysis import degraded_buckets, service_column
from .metrics import Event

if TYPE_CHECKING:
    from .result import Result

MAX_ROWS = 40
GROUPED = {"pod_crash", "pod_restart", "pod_ready", "scale_up", "scale_down", "alert_firing"}
DB_EVENTS = {"first_refused_connect"}
_RATE = re.compile(r"rate\s+([\d.e+-]+)\s*->\s*([\d.e+-]+)")


# ---------------------------------------------------------------- formatting


def mmss(seconds: float) -> str:
    """`mm:ss` (or `h:mm:ss` past an hour) of a simulated time."""
    s = int(math.floor(seconds + 1e-9))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60:02d}:{rest % 60:02d}"


def _n(x: float) -> str:
    return f"{int(round(x)):,}"


def _pct(share: float) -> str:
    return f"{100.0 * share:.1f} %"


def _ms(ms: Optional[float]) -> str:
    if ms is None or not math.isfinite(ms):
        return "–"
    if ms >= 1000.0:
        return f"{ms / 1000.0:.2g} s" if ms < 10000.0 else f"{ms / 1000.0:.0f} s"
    return f"{ms:.1f} ms" if ms < 10.0 else f"{ms:.0f} ms"


def _s(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.3g} s"


class _Run:
    """Look-ups into one run's series by service and time."""

    def __init__(self, result: "Result"):
        self.result = result
        self.sc = result.scenario
        self.summary = result.summary
        self.rec = result.recording
        self.services = list(self.sc.services)

    def at(self, key: str, service: str, t: float) -> float:
        i = min(self.rec.n_buckets - 1, max(0, int(t / self.rec.bucket + 1e-9)))
        return float(service_column(self.result.timeseries, key, service or self.services[0])[i])

    def service_figures(self, service: str, t: float) -> str:
        if not service or service not in self.sc.services:
            return self.db_figures(t)
        ready = self.at("pods_ready", service, t)
        in_use = self.at("pool_total", service, t) - self.at("pool_idle", service, t)
        capacity = ready * self.sc.services[service].pool.max
        parts = [f"{ready:.0f} pod{'' if round(ready) == 1 else 's'} ready", f"pool {in_use:.0f} of {capacity:.0f} in use",
                 f"{_n(self.at('pool_waiting_max', service, t))} waiting"]
        p99 = self.at("latency_p99_ms", service, t)
        if math.isfinite(p99):
            parts.append(f"p99 {_ms(p99)}")
        return ", ".join(parts)

    def db_figures(self, t: float) -> str:
        conns = self.at("db_connections_max", "", t)
        return f"database {conns:.0f} of {self.sc.database.max_connections} connections"


# ---------------------------------------------------------------- headline


def _last_trigger_end(run: _Run) -> float:
    return min(max((t["end"] for t in run.summary["triggers"]), default=0.0), run.rec.end)


def _worst_minute(run: _Run) -> Optional[tuple[float, float]]:
    """(start, failure share) of the worst 60-second window among requests that ended in it."""
    per = max(1, int(round(60.0 / run.rec.bucket)))
    fails = sum(service_column(run.result.timeseries, "failures", s) for s in run.services)
    ended = fails + sum(service_column(run.result.timeseries, "successes", s) for s in run.services)
    n = len(fails)
    starts = np.arange(0, n, per)
    f = np.add.reduceat(fails, starts) if n else np.zeros(0)
    e = np.add.reduceat(ended, starts) if n else np.zeros(0)
    if not np.any(e > 0):
        return None
    share = np.where(e > 0, f / np.where(e > 0, e, 1.0), -1.0)
    i = int(np.argmax(share))
    return float(starts[i] * run.rec.bucket), float(share[i])


def _outcome_sentence(run: _Run) -> str:
    s = run.summary
    unit = "second" if run.rec.bucket == 1.0 else "bucket"
    since = run.rec.end - _last_trigger_end(run)
    settle = float(run.sc.analysis.settle)
    if s["outcome"] == "stable":
        return f"**Outcome: stable: no degraded {unit}.**"
    if s["outcome"] == "recovered":
        if not s["triggers"]:
            return f"**Outcome: recovered: healthy since {mmss(s['recovery_s'])}.**"
        return f"**Outcome: recovered, {s['recovery_s']:g} s after the last trigger ended.**"
    if s["outcome"] == "metastable":
        return f"**Outcome: metastable: still degraded at the end, {since:g} s after the last trigger ended.**"
    return (f"**Outcome: inconclusive: the run ended {since:g} s after the last trigger ended, "
            f"before {settle:g} s of health.**")


def _headline(run: _Run) -> str:
    services = run.summary["services"].values()
    requests = sum(v["requests"] for v in services)
    failed = sum(v["failures_total"] for v in services)
    in_flight = sum(v["in_flight"] for v in services)
    attempts = sum(v["attempts"] for v in services)
    lines = [f"# Post-mortem: {run.sc.name} (seed {run.sc.seed})", ""]
    if run.sc.title:
        lines += [f"*{run.sc.title}*", ""]
    text = _outcome_sentence(run)
    if requests:
        text += f" {_n(failed)} of {_n(requests)} requests failed ({_pct(failed / requests)})"
        worst = _worst_minute(run)
        if worst is not None and failed:
            start, share = worst
            text += f"; the worst minute ({mmss(start)}–{mmss(start + 60)}) failed {_pct(share)} of its requests"
        text += "."
        if in_flight:
            text += f" {_n(in_flight)} were still in flight at the end."
        text += f" Amplification: {attempts / requests:.2f} attempts per request."
    lines.append(text)
    return "\n".join(lines)


# ---------------------------------------------------------------- what happened


def _traffic(detail: str, service: str) -> str:
    m = _RATE.search(detail)
    if not m:
        return f"Traffic to `{service}`: {detail}."
    a, b = float(m.group(1)), float(m.group(2))
    verb = "rose" if b > a else "fell" if b < a else "stayed"
    return f"Traffic to `{service}` {verb} from {a:g} to {b:g} req/s."


def _who(service: str) -> str:
    return f" on `{service}`" if service else ""


def _describe(group: list[Event]) -> str:
    e, n = group[0], len(group)
    svc = e.service
    if e.kind in ("phase_start", "phase_end"):
        return _traffic(e.detail, svc)
    if e.kind == "incident_start":
        return f"Incident began{_who(svc)}: {e.detail}."
    if e.kind == "incident_end":
        return f"Incident ended{_who(svc)}: {e.detail}."
    if e.kind == "first_pool_waiting":
        return f"The first request waited for a connection in `{svc}`'s pool."
    if e.kind == "first_failure":
        return f"The first failed request on `{svc}`: {e.detail}."
    if e.kind == "first_refused_connect":
        return f"The database refused its first connection: {e.detail}."
    if e.kind == "alert_firing":
        times = f" ({n} times)" if n > 1 else ""
        meaning = ALERT_MEANINGS.get(e.detail, "")
        return f"Alert `{e.detail}` fired{_who(svc)}{times}" + (f": {meaning}." if meaning else ".")
    if e.kind in ("scale_up", "scale_down"):
        what = "up" if e.kind == "scale_up" else "down"
        if n > 1:
            return f"The autoscaler scaled `{svc}` {what} {n} times; first: {e.detail}; last: {group[-1].detail}."
        return f"The autoscaler scaled `{svc}` {what}: {e.detail}."
    label = {"pod_crash": "crashed", "pod_restart": "restarted", "pod_ready": "became ready"}.get(e.kind)
    if label:
        first = f"; first: {e.detail}" if e.detail else ""
        return (f"{n} `{svc}` pods {label}{first}." if n > 1 else
                f"A `{svc}` pod {label}" + (f": {e.detail}." if e.detail else "."))
    return f"`{e.kind}`{_who(svc)}" + (f": {e.detail}." if e.detail else ".")


def _figures(run: _Run, group: list[Event]) -> str:
    e = group[-1] if group[0].kind != "alert_firing" else group[0]
    if e.kind == "alert_firing":
        last = [a for a in run.summary["alerts"] if a["name"] == e.detail and a["service"] == e.service
                and a["fired_at"] <= group[-1].time + 1e-9]
        resolved = last[-1]["resolved_at"] if last else None
        tail = f"resolved {mmss(resolved)}" if resolved is not None else "still firing at the end"
        base = run.db_figures(e.time) if not e.service else run.service_figures(e.service, e.time)
        return f"{base}; {tail}"
    if e.kind in DB_EVENTS or not e.service:
        return run.db_figures(e.time)
    return run.service_figures(e.service, e.time)


def _groups(events: list[Event]) -> list[list[Event]]:
    """Consecutive events of one groupable kind and service (one alert) in one row."""
    groups: list[list[Event]] = []
    for e in events:
        if e.kind in ("alert_resolved", "scale_hold"):  # holds are every HPA period: events.csv has them
            continue
        key = (e.kind, e.service, e.detail if e.kind == "alert_firing" else "")
        if groups and e.kind in GROUPED:
            g = groups[-1][0]
            if (g.kind, g.service, g.detail if g.kind == "alert_firing" else "") == key:
                groups[-1].append(e)
                continue
        groups.append([e])
    return groups


def _first_degraded_row(run: _Run) -> Optional[tuple[float, str, str]]:
    degraded = degraded_buckets(run.sc, run.result.timeseries)
    if not degraded.any():
        return None
    i = int(np.flatnonzero(degraded)[0])
    t = i * run.rec.bucket
    a = run.sc.analysis
    for svc in run.services:
        fails = run.at("failures", svc, t)
        ended = fails + run.at("successes", svc, t)
        p99 = run.at("latency_p99_ms", svc, t)
        if math.isfinite(p99) and p99 > 1000.0 * a.latency_p99_threshold:
            what = f"`{svc}` p99 latency passed {_s(a.latency_p99_threshold)}."
        elif ended and fails / ended > a.error_rate_threshold:
            what = f"`{svc}` failures passed {_pct(a.error_rate_threshold)} of requests."
        else:
            continue
        return t, f"The first degraded {'second' if run.rec.bucket == 1.0 else 'bucket'}: {what}", \
            run.service_figures(svc, t) + (f", {_pct(fails / ended)} failed" if ended else "")
    return None


def _outcome_row(run: _Run) -> tuple[float, str, str]:
    s = run.summary
    end = run.rec.end
    if s["outcome"] == "recovered":
        t = _last_trigger_end(run) + s["recovery_s"] if s["triggers"] else s["recovery_s"]
        if s["degraded_buckets"] and t > 0:
            return t, "The last degraded bucket ended; the system has been healthy since.", ""
        return t, "Healthy after the last trigger.", ""
    if s["outcome"] == "stable":
        return end, "The run ended with no degraded bucket.", ""
    if s["outcome"] == "metastable":
        return end, "The run ended still degraded though every trigger had ended.", \
            "; ".join(run.service_figures(svc, end - run.rec.bucket) for svc in run.services)
    return end, "The run ended before the outcome could be told.", ""


def _what_happened(run: _Run) -> str:
    rows: list[tuple[float, str, str, str]] = []
    for group in _groups(run.result.events):
        t0, t1 = group[0].time, group[-1].time
        when = mmss(t0) if mmss(t0) == mmss(t1) else f"{mmss(t0)}–{mmss(t1)}"
        rows.append((t0, when, _describe(group), _figures(run, group)))
    for t, what, figures in filter(None, (_first_degraded_row(run), _outcome_row(run))):
        rows.append((t, mmss(t), what, figures))
    rows.sort(key=lambda r: r[0])
    lines = ["## What happened", "| time | what | figures |", "|---|---|---|"]
    for _, when, what, figures in rows[:MAX_ROWS]:
        lines.append(f"| {when} | {_cell(what)} | {_cell(figures)} |")
    if len(rows) > MAX_ROWS:
        lines.append(f"| … | {len(rows) - MAX_ROWS} more rows: see events.csv | |")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# ---------------------------------------------------------------- why and figures


def _max_pods(svc: Any) -> int:
    autoscaler = getattr(svc, "autoscaler", None)
    if autoscaler is not None:
        return int(autoscaler.max_replicas)
    schedule = getattr(svc.pod, "schedule", None) or []
    return max([int(svc.pod.replicas)] + [int(s.replicas) for s in schedule])


def _arithmetic(run: _Run) -> str:
    db = run.sc.database
    terms, total = [], 0
    for name, svc in run.sc.services.items():
        pods = _max_pods(svc)
        terms.append(f"`{name}` {pods} pod{'' if pods == 1 else 's'} x {svc.pool.max}")
        total += pods * svc.pool.max
    other = getattr(db, "other_connections", 0)
    if other:
        terms.append(f"{other} other connections")
        total += other
    limit = 0.8 * db.max_connections
    verdict = "holds" if total <= limit else "fails"
    return (f"The arithmetic ({verdict}): {' + '.join(terms)} = {total} connections at most, "
            f"against 0.8 x max_connections = {limit:g}.")


def _why(run: _Run) -> str:
    text = run.sc.description.strip() or "The scenario has no description."
    return f"## Why\n{text}\n\n{_arithmetic(run)}"


def _failures_cell(failures: dict[str, int]) -> str:
    return "; ".join(f"{k} {_n(v)}" for k, v in failures.items() if v) or "none"


def _figures_table(run: _Run) -> str:
    svcs = run.summary["services"]
    names = list(svcs)
    rows: list[tuple[str, Any]] = [
        ("requests", lambda v: _n(v["requests"])),
        ("successes", lambda v: _n(v["successes"])),
        ("failed", lambda v: f"{_n(v['failures_total'])} ({_pct(v['failures_total'] / v['requests'])})"
         if v["requests"] else "0"),
        ("failures by kind", lambda v: _failures_cell(v["failures"])),
        ("in flight at the end", lambda v: _n(v["in_flight"])),
        ("attempts (amplification)", lambda v: f"{_n(v['attempts'])} ({v['amplification'] or 0:.2f})"),
        ("wasted attempts", lambda v: _n(v["wasted"])),
        ("latency mean / p50 / p99", lambda v: " / ".join(_ms(v["latency_ms"][k]) for k in ("mean", "p50", "p99"))),
        ("p99 before / during / after", lambda v: " / ".join(_ms(v["p99_ms"][k]) for k in ("before", "during", "after"))),
        ("acquire wait mean", lambda v: _ms(v["acquire_wait_ms"]["mean"])),
        ("peak pool waiting", lambda v: _n(v["peak_pool_waiting"])),
        ("pods at most", lambda v: _n(v["pods_max"])),
        ("crashes", lambda v: _n(v["crashes"])),
        ("peak database connections", lambda v: _n(v["peak_db_connections"])),
    ]
    lines = ["## Figures", "| | " + " | ".join(f"`{n}`" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for label, cell in rows:
        lines.append(f"| {label} | " + " | ".join(_cell(cell(svcs[n])) for n in names) + " |")
    db = run.summary["database"]
    lines += ["", f"Database: peak {_n(db['peak_connections'])} of {db['max_connections']} connections, "
              f"{_n(db['refused_connects'])} refused connects, peak CPU {_pct(db['peak_cpu'])}."]
    alerts = run.summary["alerts"]
    if alerts:
        names_fired = sorted({(a["name"], a["service"]) for a in alerts}, key=lambda x: x)
        lines.append("Alerts fired: " + ", ".join(f"`{n}`" + (f" on `{s}`" if s else "") for n, s in names_fired) + ".")
    else:
        lines.append("No alert fired.")
    return "\n".join(lines)


def render_report(result: "Result") -> str:
    """The post-mortem of a run as Markdown (the form of examples/report-example.md)."""
    run = _Run(result)
    parts = [_headline(run), _what_happened(run), _why(run), _figures_table(run)]
    return "\n\n".join(parts) + "\n"


__all__ = ["render_report", "mmss"]
