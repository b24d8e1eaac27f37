"""The post-mortem in Markdown: the outcome, the cascade in time order, the alerts, why, the figures.

Every figure comes from the run (summary, series, events) or the scenario; every
sentence from an event, a trigger, the outcome or the scenario's description.
The timeline is timeline.py, the look-ups run_view.py, the formatters format.py.
"""
from __future__ import annotations

from typing import Any

from ..analysis import Result, arithmetic
from ..vocabulary import TROUBLE, Trouble
from .format import cell, count, ms, pct, span
from .headline import headline
from .run_view import RunView
from .timeline import what_happened

MAX_ALERT_LINES = 20

# ---------------------------------------------------------------- alerts


def _alert_timing(run: RunView, a: dict[str, Any]) -> str:
    """How an alert's firing stands to the impact it could have warned of."""
    first_trigger = min((t["start"] for t in run.summary["triggers"]), default=None)
    whose = f"`{a['service']}`'s impact" if a["service"] else "the first impact"
    if a["lead_s"] is not None:
        return f"; fired {span(a['lead_s'])} before {whose} began" if a["lead_s"] > 0 else f"; fired as {whose} began"
    if first_trigger is not None and a["fired_at"] <= first_trigger + 1e-9:
        return "; already firing before the first trigger, so no warning of it"
    svcs = run.summary["services"]
    starts = [v["impact"]["start_s"] for n, v in svcs.items() if n == a["service"] or not a["service"]]
    begun = min((t for t in starts if t is not None), default=None)
    if begun is None:
        return ""
    return f"; fired {span(a['fired_at'] - begun)} after {whose} began"


def _alerts(run: RunView) -> str:
    alerts = run.summary["alerts"]
    lines = ["## Alerts"]
    if not alerts:
        return "\n".join(lines + ["No alert fired."])
    for a in alerts[:MAX_ALERT_LINES]:
        where = f" on `{a['service']}`" if a["service"] else ""
        text = f"- `{a['name']}`{where} fired at {run.clock(a['fired_at'])}"
        meaning = run.meanings.get(a["name"])
        if meaning:
            text += f" ({meaning})"
        text += (f", resolved {run.clock(a['resolved_at'])}" if a["resolved_at"] is not None
                 else ", still firing at the end")
        lines.append(text + _alert_timing(run, a) + ".")
    if len(alerts) > MAX_ALERT_LINES:
        lines.append(f"- … {len(alerts) - MAX_ALERT_LINES} more firings: see events.csv.")
    return "\n".join(lines)


# ---------------------------------------------------------------- why and figures


def _why(run: RunView) -> str:
    text = run.sc.description.strip() or "The scenario has no description."
    return f"## Why\n{text}\n\n{arithmetic(run.sc).sentence()}"


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
        ("attempts (amplification)", lambda v: f"{count(v['attempts'])} ("
         + (f"{v['amplification']:.2f}" if v["amplification"] is not None else "–") + ")"),
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
    if any(any(v["refused_attempts"].values()) for v in svcs.values()):
        rows.append(("attempts refused at once by a defence", lambda v: _failures_cell(v["refused_attempts"])))
    if any(v["retries_denied"] for v in svcs.values()):
        rows.append(("retries denied by the budget", lambda v: count(v["retries_denied"])))
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
    rep = db.get("replicas") or {}
    if rep.get("count"):
        lines.append(f"Read replicas: {rep['count']}, each at most {count(rep['peak_connections'])} of "
                     f"{db['max_connections']} connections, {count(rep['refused_connects'])} refused connects, "
                     f"peak CPU {pct(rep['peak_cpu'])}.")
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
    parts = [headline(run), what_happened(run), _alerts(run), _why(run), _figures_table(run)]
    return "\n\n".join(parts) + "\n"

