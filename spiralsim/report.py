"""The post-mortem in Markdown: the outcome, the cascade in time order, the alerts, why, the figures.

Every figure comes from the run (summary, series, events) or the scenario; every
sentence from an event, a trigger, the outcome or the scenario's description.
The timeline is report_timeline.py; formatting and look-ups report_base.py.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional

import numpy as np

from .analysis import service_column
from .report_base import Run, cell, ms_, mmss, n_, pct, plural, span
from .report_timeline import what_happened

if TYPE_CHECKING:
    from .result import Result

MAX_ALERT_LINES = 20

# ---------------------------------------------------------------- headline


def _worst_minute(run: Run) -> Optional[tuple[float, float]]:
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


def _outcome_sentence(run: Run) -> str:
    s = run.summary
    unit = "second" if run.rec.bucket == 1.0 else "bucket"
    since_s = run.rec.end - run.last_trigger_end()
    since = f"{since_s:g} s" if since_s < 3600 else span(since_s)
    settle = float(run.sc.analysis.settle)
    if s["outcome"] == "stable":
        return f"**Outcome: stable: no degraded {unit}.**"
    if s["outcome"] == "recovered":
        if not s["triggers"]:
            return f"**Outcome: recovered: healthy since {run.clock(s['recovery_s'])}.**"
        return f"**Outcome: recovered, {s['recovery_s']:g} s after the last trigger ended.**"
    if s["outcome"] == "metastable":
        if not s["triggers"]:
            return "**Outcome: metastable: still degraded at the end, with no trigger to blame.**"
        return f"**Outcome: metastable: still degraded at the end, {since} after the last trigger ended.**"
    return (f"**Outcome: inconclusive: the run ended {since} after the last trigger ended, "
            f"before {settle:g} s of health.**")


def _lost_writes_sentence(run: Run) -> str:
    svcs = run.summary["services"]
    lost = sum(v.get("lost_writes", 0) for v in svcs.values())
    foreign = sum(v.get("foreign_statements", 0) for v in svcs.values())
    if not lost and not foreign:
        return ""
    parts = []
    if foreign:
        parts.append(f"{plural(foreign, 'statement')} ran inside another request's transaction")
    if lost:
        parts.append(f"{plural(lost, 'request')} succeeded but had {'its' if lost == 1 else 'their'} "
                     "writes rolled back")
    return " Data was wrong: " + " and ".join(parts) + "."


def _headline(run: Run) -> str:
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
        text += f" {n_(failed)} of {n_(requests)} requests failed ({pct(failed / requests)})"
        worst = _worst_minute(run)
        if worst is not None and failed:
            start, share = worst
            text += (f"; the worst minute ({run.clock(start)}–{run.clock(start + 60)}) "
                     f"failed {pct(share)} of its requests")
        text += "."
        if in_flight:
            text += f" {n_(in_flight)} were still in flight at the end."
        text += f" Amplification: {attempts / requests:.2f} attempts per request."
    text += _lost_writes_sentence(run)
    lines.append(text)
    return "\n".join(lines)


# ---------------------------------------------------------------- alerts


def _alerts(run: Run) -> str:
    alerts = run.summary["alerts"]
    lines = ["## Alerts"]
    if not alerts:
        return "\n".join(lines + ["No alert fired."])
    if run.outage is not None:
        lines.append(f"The outage (the first degraded {'second' if run.rec.bucket == 1.0 else 'bucket'}) "
                     f"began at {run.clock(run.outage)}.")
    else:
        lines.append("No bucket was degraded: no outage to be warned of.")
    lines.append("")
    for a in alerts[:MAX_ALERT_LINES]:
        where = f" on `{a['service']}`" if a["service"] else ""
        text = f"- `{a['name']}`{where} fired at {run.clock(a['fired_at'])}"
        meaning = run.meanings.get(a["name"])
        if meaning:
            text += f" ({meaning})"
        text += (f", resolved {run.clock(a['resolved_at'])}" if a["resolved_at"] is not None
                 else ", still firing at the end")
        lead = a.get("lead_s")
        if lead is not None and run.outage is not None:
            text += f"; fired {span(lead)} before the outage" if lead > 0 else "; fired as the outage began"
        elif run.outage is not None:
            text += f"; fired {span(a['fired_at'] - run.outage)} after the outage began"
        lines.append(text + ".")
    if len(alerts) > MAX_ALERT_LINES:
        lines.append(f"- … {len(alerts) - MAX_ALERT_LINES} more firings: see events.csv.")
    return "\n".join(lines)


# ---------------------------------------------------------------- why and figures


def _max_pods(svc: Any) -> int:
    autoscaler = getattr(svc, "autoscaler", None)
    if autoscaler is not None:
        return int(autoscaler.max_replicas)
    schedule = getattr(svc.pod, "schedule", None) or []
    return max([int(svc.pod.replicas)] + [int(s.replicas) for s in schedule])


def _arithmetic(run: Run) -> str:
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


def _why(run: Run) -> str:
    text = run.sc.description.strip() or "The scenario has no description."
    return f"## Why\n{text}\n\n{_arithmetic(run)}"


def _failures_cell(failures: dict[str, int]) -> str:
    return "; ".join(f"{k} {n_(v)}" for k, v in failures.items() if v) or "none"


def _lock_waits(v: dict[str, Any]) -> str:
    mean = (v.get("lock_wait_ms") or {}).get("mean")
    return n_(v.get("lock_waits", 0)) + (f" (mean {ms_(mean)})" if mean is not None else "")


#: Rows shown only when some service has a non-zero value: (label, summary key, cell).
TROUBLE_ROWS: tuple[tuple[str, str, Callable[[dict[str, Any]], str]], ...] = (
    ("leaked connections", "leaked", lambda v: n_(v["leaked"])),
    ("orphaned transactions", "orphaned", lambda v: n_(v["orphaned"])),
    ("statements in another request's transaction", "foreign_statements", lambda v: n_(v["foreign_statements"])),
    ("successes whose writes were rolled back", "lost_writes", lambda v: n_(v["lost_writes"])),
    ("statements that waited for an orphan's locks", "lock_waits", _lock_waits),
    ("sessions killed idle in transaction", "sessions_killed", lambda v: n_(v["sessions_killed"])),
    ("connections dropped by the database", "terminated", lambda v: n_(v["terminated"])),
    ("peak dead clients in the pool", "peak_pool_dead", lambda v: n_(v["peak_pool_dead"])),
)


def _figures_table(run: Run) -> str:
    svcs = run.summary["services"]
    names = list(svcs)
    rows: list[tuple[str, Any]] = [
        ("requests", lambda v: n_(v["requests"])),
        ("successes", lambda v: n_(v["successes"])),
        ("failed", lambda v: f"{n_(v['failures_total'])} ({pct(v['failures_total'] / v['requests'])})"
         if v["requests"] else "0"),
        ("failures by kind", lambda v: _failures_cell(v["failures"])),
        ("in flight at the end", lambda v: n_(v["in_flight"])),
        ("attempts (amplification)", lambda v: f"{n_(v['attempts'])} ({v['amplification'] or 0:.2f})"),
        ("wasted attempts", lambda v: n_(v["wasted"])),
        ("latency mean / p50 / p99", lambda v: " / ".join(ms_(v["latency_ms"][k]) for k in ("mean", "p50", "p99"))),
        ("p99 before / during / after", lambda v: " / ".join(ms_(v["p99_ms"][k]) for k in ("before", "during", "after"))),
        ("acquire wait mean", lambda v: ms_(v["acquire_wait_ms"]["mean"])),
        ("peak pool waiting", lambda v: n_(v["peak_pool_waiting"])),
        ("pods at most", lambda v: n_(v["pods_max"])),
        ("crashes", lambda v: n_(v["crashes"])),
        ("peak database connections", lambda v: n_(v["peak_db_connections"])),
    ]
    rows += [(label, fn) for label, key, fn in TROUBLE_ROWS if any(v.get(key) for v in svcs.values())]
    lines = ["## Figures", "| | " + " | ".join(f"`{n}`" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for label, fn in rows:
        lines.append(f"| {label} | " + " | ".join(cell(fn(svcs[n])) for n in names) + " |")
    db = run.summary["database"]
    iit = db.get("peak_idle_in_transaction", 0)
    lines += ["", f"Database: peak {n_(db['peak_connections'])} of {db['max_connections']} connections, "
              + (f"peak {n_(iit)} idle in transaction, " if iit else "")
              + f"{n_(db['refused_connects'])} refused connects, peak CPU {pct(db['peak_cpu'])}."]
    alerts = run.summary["alerts"]
    if alerts:
        names_fired = sorted({(a["name"], a["service"]) for a in alerts}, key=lambda x: x)
        lines.append("Alerts fired: " + ", ".join(f"`{n}`" + (f" on `{s}`" if s else "") for n, s in names_fired) + ".")
    else:
        lines.append("No alert fired.")
    return "\n".join(lines)


def render_report(result: "Result") -> str:
    """The post-mortem of a run as Markdown (the form of examples/report-example.md)."""
    run = Run(result)
    parts = [_headline(run), what_happened(run), _alerts(run), _why(run), _figures_table(run)]
    return "\n\n".join(parts) + "\n"


__all__ = ["render_report", "mmss", "span"]
