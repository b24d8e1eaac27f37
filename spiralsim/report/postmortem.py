"""The post-mortem in Markdown: the outcome, the cascade in time order, the alerts, why, the figures.

Every figure comes from the run (summary, series, events) or the scenario; every
sentence from an event, a trigger, the outcome or the scenario's description.
The timeline is timeline.py, the look-ups run_view.py, the formatters format.py.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..analysis import Result, service_column
from ..scenario import ServiceConfig
from ..vocabulary import TROUBLE, Trouble
from .format import cell, count, ms, pct, plural, span
from .run_view import RunView
from .timeline import what_happened

MAX_ALERT_LINES = 20

# ---------------------------------------------------------------- headline


def _worst_minute(run: RunView) -> Optional[tuple[float, float]]:
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


def _outcome_sentence(run: RunView) -> str:
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


def _lost_writes_sentence(run: RunView) -> str:
    svcs = run.summary["services"]
    lost = sum(v["lost_writes"] for v in svcs.values())
    foreign = sum(v["foreign_statements"] for v in svcs.values())
    if not lost and not foreign:
        return ""
    parts = []
    if foreign:
        parts.append(f"{plural(foreign, 'statement')} ran inside another request's transaction")
    if lost:
        parts.append(f"{plural(lost, 'request')} succeeded but had {'its' if lost == 1 else 'their'} "
                     "writes rolled back")
    return " Data was wrong: " + " and ".join(parts) + "."


def _headline(run: RunView) -> str:
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
        text += f" {count(failed)} of {count(requests)} requests failed ({pct(failed / requests)})"
        worst = _worst_minute(run)
        if worst is not None and failed:
            start, share = worst
            text += (f"; the worst minute ({run.clock(start)}–{run.clock(start + 60)}) "
                     f"failed {pct(share)} of its requests")
        text += "."
        if in_flight:
            text += f" {count(in_flight)} were still in flight at the end."
        text += f" Amplification: {attempts / requests:.2f} attempts per request."
    text += _lost_writes_sentence(run)
    lines.append(text)
    return "\n".join(lines)


# ---------------------------------------------------------------- alerts


def _alerts(run: RunView) -> str:
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


def _max_pods(svc: ServiceConfig) -> int:
    if svc.autoscaler is not None:
        return int(svc.autoscaler.max_replicas)
    return max([int(svc.pod.replicas)] + [int(s.replicas) for s in svc.pod.schedule])


def _arithmetic(run: RunView) -> str:
    db = run.sc.database
    terms, total = [], 0
    for name, svc in run.sc.services.items():
        pods = _max_pods(svc)
        terms.append(f"`{name}` {pods} pod{'' if pods == 1 else 's'} x {svc.pool.max}")
        total += pods * svc.pool.max
    if db.other_connections:
        terms.append(f"{db.other_connections} other connections")
        total += db.other_connections
    share = run.sc.analysis.db_connections_share
    limit = share * db.max_connections
    verdict = "holds" if total <= limit else "fails"
    return (f"The arithmetic ({verdict}): {' + '.join(terms)} = {total} connections at most, "
            f"against {share:g} x max_connections = {limit:g}.")


def _why(run: RunView) -> str:
    text = run.sc.description.strip() or "The scenario has no description."
    return f"## Why\n{text}\n\n{_arithmetic(run)}"


def _failures_cell(failures: dict[str, int]) -> str:
    return "; ".join(f"{k} {count(v)}" for k, v in failures.items() if v) or "none"


def _trouble_cell(row: Trouble, v: dict[str, Any]) -> str:
    """A trouble figure of one service; lock waits with their mean."""
    text = count(v[row.key])
    mean = v["lock_wait_ms"]["mean"] if row.key == "lock_waits" else None
    return text + (f" (mean {ms(mean)})" if mean is not None else "")


def _figures_table(run: RunView) -> str:
    svcs = run.summary["services"]
    names = list(svcs)
    rows: list[tuple[str, Any]] = [
        ("requests", lambda v: count(v["requests"])),
        ("successes", lambda v: count(v["successes"])),
        ("failed", lambda v: f"{count(v['failures_total'])} ({pct(v['failures_total'] / v['requests'])})"
         if v["requests"] else "0"),
        ("failures by kind", lambda v: _failures_cell(v["failures"])),
        ("in flight at the end", lambda v: count(v["in_flight"])),
        ("attempts (amplification)", lambda v: f"{count(v['attempts'])} ({v['amplification'] or 0:.2f})"),
        ("wasted attempts", lambda v: count(v["wasted"])),
        ("latency mean / p50 / p99", lambda v: " / ".join(ms(v["latency_ms"][k]) for k in ("mean", "p50", "p99"))),
        ("p99 before / during / after",
         lambda v: " / ".join(ms(v["p99_ms"][k]) for k in ("before", "during", "after"))),
        ("acquire wait mean", lambda v: ms(v["acquire_wait_ms"]["mean"])),
        ("peak pool waiting", lambda v: count(v["peak_pool_waiting"])),
        ("pods at most", lambda v: count(v["pods_max"])),
        ("crashes", lambda v: count(v["crashes"])),
        ("peak database connections", lambda v: count(v["peak_db_connections"])),
    ]
    rows += [(row.label, lambda v, row=row: _trouble_cell(row, v)) for row in TROUBLE
             if any(v[row.key] for v in svcs.values())]
    lines = ["## Figures", "| | " + " | ".join(f"`{n}`" for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for label, fn in rows:
        lines.append(f"| {label} | " + " | ".join(cell(fn(svcs[n])) for n in names) + " |")
    db = run.summary["database"]
    iit = db["peak_idle_in_transaction"]
    lines += ["", f"Database: peak {count(db['peak_connections'])} of {db['max_connections']} connections, "
              + (f"peak {count(iit)} idle in transaction, " if iit else "")
              + f"{count(db['refused_connects'])} refused connects, peak CPU {pct(db['peak_cpu'])}."]
    alerts = run.summary["alerts"]
    if alerts:
        names_fired = sorted({(a["name"], a["service"]) for a in alerts}, key=lambda x: x)
        lines.append("Alerts fired: " + ", ".join(f"`{n}`" + (f" on `{s}`" if s else "") for n, s in names_fired) + ".")
    else:
        lines.append("No alert fired.")
    return "\n".join(lines)


def render_report(result: Result) -> str:
    """The post-mortem of a run as Markdown (the form of examples/report-example.md)."""
    run = RunView(result)
    parts = [_headline(run), what_happened(run), _alerts(run), _why(run), _figures_table(run)]
    return "\n\n".join(parts) + "\n"

