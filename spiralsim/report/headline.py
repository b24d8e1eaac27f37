"""The post-mortem's first lines: the outcome and why, then each service's impact (when
it was degraded, how soon an alert said so, when it recovered and settled, the bad
requests with their denominator, the error budget burned), then the run's totals."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from ..analysis import service_column
from .format import cell, count, pct, plural, span
from .run_view import RunView


def outcome_sentence(summary: dict[str, Any], clock: Any = None) -> str:
    """The outcome in words: `recovered, 15 s before the last trigger ended`, `stuck: ...`."""
    verdict, rec = summary["outcome"], summary["recovery_s"]
    if verdict == "recovered":
        if not summary["triggers"]:
            return f"recovered: healthy since {clock(rec) if clock else span(rec)}"
        if rec == 0:
            return "recovered as the last trigger ended"
        return f"recovered, {span(abs(rec))} {'after' if rec > 0 else 'before'} the last trigger ended"
    if verdict == "stable":
        return "stable: never degraded"
    reason = summary["outcome_reason"]
    return f"{verdict}: {reason}" if reason else verdict


def _window(run: RunView, hurt: dict[str, Any]) -> str:
    if hurt["start_s"] is None:
        return "never degraded"
    return f"{run.clock(hurt['start_s'])}–{run.clock(hurt['end_s'])} ({span(hurt['degraded_s'])} degraded)"


def detected(hurt: dict[str, Any], none: str = "no alert fired while it lasted") -> str:
    """How soon an alert said so: `after 9 s (`pool_waiting`)`, `already firing (...)`, `none`."""
    if hurt["start_s"] is None:
        return "–"
    if hurt["detected_by"] is None:
        return none
    when = "already firing" if hurt["detected_s"] == 0 else f"after {span(hurt['detected_s'])}"
    return f"{when} (`{hurt['detected_by']}`)"


def _recovered(run: RunView, hurt: dict[str, Any]) -> str:
    if hurt["start_s"] is None:
        return "–"
    if hurt["end_s"] >= run.rec.end - 1e-9:
        return "not by the end of the run"
    return f"{run.clock(hurt['end_s'])}, {span(hurt['end_s'] - hurt['start_s'])} after it began"


def _bad(v: dict[str, Any], threshold_s: float) -> str:
    hurt = v["impact"]
    bad = hurt["failed"] + hurt["slow"]
    if not v["requests"]:
        return "no requests"
    return (f"{count(bad)} of its {plural(v['requests'], 'request')} ({pct(bad / v['requests'])}): "
            f"{count(hurt['failed'])} failed, {count(hurt['slow'])} slow (succeeded in more than {span(threshold_s)})")


def impact_table(run: RunView) -> str:
    """One column per service: the rows an incident review starts with."""
    svcs = run.summary["services"]
    a = run.sc.analysis
    window = f"{a.slo_window / 86400:g} days" if a.slo_window % 86400 == 0 else span(a.slo_window)
    rows = [
        ("degraded", lambda v: _window(run, v["impact"])),
        ("detected", lambda v: detected(v["impact"])),
        ("recovered", lambda v: _recovered(run, v["impact"])),
        ("settled", lambda v: run.clock(v["impact"]["settled_s"]) if v["impact"]["settled_s"] is not None
         else "not by the end of the run"),
        ("bad requests", lambda v: _bad(v, a.latency_p99_threshold)),
        (f"error budget ({pct(1 - a.slo)} of {window})", lambda v: "–" if v["impact"]["budget_share"] is None
         else f"{pct(v['impact']['budget_share'])} burned"),
    ]
    lines = ["| impact | " + " | ".join(f"`{n}`" for n in svcs) + " |", "|---|" + "---|" * len(svcs)]
    lines += [f"| {label} | " + " | ".join(cell(fn(v)) for v in svcs.values()) + " |" for label, fn in rows]
    return "\n".join(lines)


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


def _totals(run: RunView) -> str:
    services = run.summary["services"]
    requests = sum(v["requests"] for v in services.values())
    if not requests:
        return "No request arrived."
    failed = sum(v["failures_total"] for v in services.values())
    in_flight = sum(v["in_flight"] for v in services.values())
    attempts = sum(v["attempts"] for v in services.values())
    whose = {1: "", 2: " to both services"}.get(len(services), f" to all {len(services)} services")
    text = f"Of {plural(requests, 'request')}{whose}, {count(failed)} failed ({pct(failed / requests)})"
    worst = _worst_minute(run)
    if worst is not None and failed:
        start, share = worst
        text += (f"; the worst minute ({run.clock(start)}–{run.clock(start + 60)}) "
                 f"failed {pct(share)} of the requests that ended in it")
    text += "."
    if in_flight:
        text += f" {count(in_flight)} {'was' if in_flight == 1 else 'were'} still in flight at the end."
    text += f" Amplification: {attempts / requests:.2f} attempts per request."
    return text + _lost_writes_sentence(run)


def headline(run: RunView) -> str:
    """The title, the outcome and why, the impact table, the totals."""
    lines = [f"# Post-mortem: {run.sc.name} (seed {run.sc.seed})", ""]
    if run.sc.title:
        lines += [f"*{run.sc.title}*", ""]
    sentence = outcome_sentence(run.summary, run.clock)
    lines += [f"**Outcome: {sentence}.**", "", impact_table(run), "", _totals(run)]
    return "\n".join(lines)
