"""The post-mortem's "What happened": the cascade in time order, one row per event
(or group of like events), with the first degraded bucket and the outcome."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from ..metrics import Event
from ..scenario.triggers import Phase
from ..vocabulary import EVENT_KINDS
from .format import cell, pct, seconds, span
from .run_view import RunView

MAX_ROWS = 40


def _traffic(e: Event) -> str:
    phase: Optional[Phase] = e.data
    if phase is None:
        return f"Traffic to `{e.service}`: {e.detail}."
    a, b = (phase.base, phase.rate) if e.kind == "phase_start" else (phase.rate, phase.base)
    verb = "rose" if b > a else "fell" if b < a else "stayed"
    return f"Traffic to `{e.service}` {verb} from {a:g} to {b:g} req/s."


def _who(service: str) -> str:
    return f" on `{service}`" if service else ""


def _colon(detail: str) -> str:
    return f": {detail}." if detail else "."


def _times(n: int) -> str:
    return f" ({n} times)" if n > 1 else ""


#: One-off events: a sentence each, `{svc}` the service; the detail follows after a colon.
_SENTENCES = {
    "first_pool_waiting": "The first request waited for a connection in `{svc}`'s pool",
    "first_leak": "The first leaked connection on `{svc}`, checked out and never released",
    "first_orphan": "The first orphaned transaction on `{svc}`, released to the pool without COMMIT or ROLLBACK",
}


def describe(run: RunView, group: list[Event]) -> str:
    """The sentence of one row of "What happened"."""
    e, n = group[0], len(group)
    svc = e.service
    if e.kind in ("phase_start", "phase_end"):
        return _traffic(e)
    if e.kind == "incident_start":
        return f"Incident began{_who(svc)}: {e.detail}."
    if e.kind == "incident_end":
        return f"Incident ended{_who(svc)}: {e.detail}."
    if e.kind in _SENTENCES:
        return _SENTENCES[e.kind].format(svc=svc) + _colon(e.detail)
    if e.kind == "first_failure":
        return f"The first failed request on `{svc}`: {e.detail}."
    if e.kind == "first_refused_connect":
        return f"The database refused its first connection: {e.detail}."
    if e.kind == "db_swap":
        return f"The database began to swap: {e.detail}."
    if e.kind == "db_memory_peak":
        return f"The database's memory peaked: {e.detail}."
    if e.kind == "pool_error":
        return f"`{svc}`'s pool emitted 'error'{_times(n)}" + _colon(e.detail)
    if e.kind == "client_error":
        return f"An error event on a checked-out client of `{svc}`{_times(n)}" + _colon(e.detail)
    if e.kind == "alert_firing":
        meaning = run.meanings.get(e.detail, "")
        return f"Alert `{e.detail}` fired{_who(svc)}{_times(n)}" + (f": {meaning}." if meaning else ".")
    if e.kind in ("scale_up", "scale_down"):
        what = "up" if e.kind == "scale_up" else "down"
        if n > 1:
            return f"The autoscaler scaled `{svc}` {what} {n} times; first: {e.detail}; last: {group[-1].detail}."
        return f"The autoscaler scaled `{svc}` {what}: {e.detail}."
    label = {"pod_crash": "crashed", "pod_restart": "restarted", "pod_ready": "became ready"}.get(e.kind)
    if label:
        first = f"; first: {e.detail}" if e.detail else ""
        return (f"{n} pods of `{svc}` {label}{first}." if n > 1 else
                f"A pod of `{svc}` {label}" + (f": {e.detail}." if e.detail else "."))
    return f"`{e.kind}`{_who(svc)}" + _colon(e.detail)


def _alert_figures(run: RunView, group: list[Event]) -> str:
    e = group[0]
    mine = [a for a in run.summary["alerts"] if a["name"] == e.detail and a["service"] == e.service
            and a["fired_at"] <= group[-1].time + 1e-9]
    resolved = mine[-1]["resolved_at"] if mine else None
    tail = f"resolved {run.clock(resolved)}" if resolved is not None else "still firing at the end"
    base = run.db_figures(e.time) if not e.service else run.service_figures(e.service, e.time)
    first = next((a for a in mine if abs(a["fired_at"] - e.time) < 1e-6), None)
    lead = first.get("lead_s") if first else None
    if lead:
        tail += f"; {span(lead)} before the impact"
    return f"{base}; {tail}"


def figures(run: RunView, group: list[Event]) -> str:
    """The figures cell of one row: the state of the service (or database) at the event."""
    e = group[-1]
    if group[0].kind == "alert_firing":
        return _alert_figures(run, group)
    if EVENT_KINDS[e.kind].database or not e.service:
        return run.db_figures(e.time)
    return run.service_figures(e.service, e.time)


def groups(events: list[Event]) -> list[list[Event]]:
    """Consecutive events of one groupable kind and service (one alert) in one row."""
    out: list[list[Event]] = []
    for e in events:
        kind = EVENT_KINDS[e.kind]
        if not kind.in_timeline:  # e.g. holds, every HPA period: events.csv has them
            continue
        key = (e.kind, e.service, e.detail if e.kind == "alert_firing" else "")
        if out and kind.grouped:
            g = out[-1][0]
            if (g.kind, g.service, g.detail if g.kind == "alert_firing" else "") == key:
                out[-1].append(e)
                continue
        out.append([e])
    return out


def _first_degraded_row(run: RunView) -> Optional[tuple[float, str, str]]:
    i = run.first_degraded_index()
    if i is None:
        return None
    t = i * run.rec.bucket
    a = run.sc.analysis
    for svc in run.services:
        fails = run.at("failures", svc, t)
        ended = fails + run.at("successes", svc, t)
        p99 = run.at("latency_p99_ms", svc, t)
        if math.isfinite(p99) and p99 > 1000.0 * a.latency_p99_threshold:
            what = f"`{svc}` p99 latency passed {seconds(a.latency_p99_threshold)}."
        elif ended and fails / ended > a.error_rate_threshold:
            what = f"`{svc}` failures passed {pct(a.error_rate_threshold)} of requests."
        else:
            continue
        return t, f"The first degraded {run.unit}: {what}", \
            run.service_figures(svc, t) + (f", {pct(fails / ended)} failed" if ended else "")
    return None


def _outcome_row(run: RunView) -> tuple[float, str, str]:
    s = run.summary
    end = run.rec.end
    if s["outcome"] == "recovered":
        t = run.last_trigger_end() + s["recovery_s"] if s["triggers"] else s["recovery_s"]
        return t, f"The last degraded {run.unit} ended; healthy since.", ""
    if s["outcome"] == "stable":
        return end, f"The run ended with no degraded {run.unit}.", ""
    figures = "; ".join(f"`{svc}`: {run.service_figures(svc, end - run.rec.bucket)}" for svc in run.services)
    if s["outcome"] == "inconclusive":
        return end, f"The run ended before the outcome could be told: {s['outcome_reason']}.", figures
    return end, f"The run ended still degraded, {s['outcome']}: {s['outcome_reason']}.", figures


@dataclass(frozen=True)
class Row:
    """One row of "What happened": its number (the dashboard marks the row's events with
    it), when it starts, the sentence, the figures, and the events it tells (none for
    the rows the analysis adds: the first degraded bucket, the outcome)."""

    number: int
    time: float
    when: str
    what: str
    figures: str
    events: tuple[Event, ...]


def timeline(run: RunView) -> list[Row]:
    """The rows of "What happened" in time order, numbered from 1."""
    found: list[tuple[float, str, str, str, tuple[Event, ...]]] = []
    for group in groups(run.result.events):
        t0, t1 = group[0].time, group[-1].time
        when = run.clock(t0) if run.clock(t0) == run.clock(t1) else f"{run.clock(t0)}–{run.clock(t1)}"
        found.append((t0, when, describe(run, group), figures(run, group), tuple(group)))
    for t, what, figs in filter(None, (_first_degraded_row(run), _outcome_row(run))):
        found.append((t, run.clock(t), what, figs, ()))
    found.sort(key=lambda r: r[0])
    return [Row(i, *r) for i, r in enumerate(found, start=1)]


def what_happened(run: RunView) -> str:
    """The post-mortem's cascade: a Markdown table, one numbered row per event or group of like events."""
    rows = timeline(run)
    lines = ["## What happened", "| # | time | what | figures |", "|---|---|---|---|"]
    for row in rows[:MAX_ROWS]:
        lines.append(f"| {row.number} | {row.when} | {cell(row.what)} | {cell(row.figures)} |")
    if len(rows) > MAX_ROWS:
        lines.append(f"| … | | {len(rows) - MAX_ROWS} more rows: see events.csv | |")
    return "\n".join(lines)
