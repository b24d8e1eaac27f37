"""The short summary a run prints on the console: the outcome, each service's
figures, the database and the alerts, read from summary.json."""
from __future__ import annotations

from typing import Any, Optional

from ..vocabulary import TROUBLE
from .format import clock as format_clock
from .format import count, ms, pct, plural, span
from .headline import outcome_sentence


def trouble_lines(s: dict[str, Any]) -> list[str]:
    """One service's leaks, orphans and lost writes, and the sessions the database ended:
    a line per group, the non-zero figures only."""
    groups: dict[str, list[str]] = {}
    for row in TROUBLE:
        n = s[row.key]
        if not n:
            continue
        text = (row.one if n == 1 else row.many).format(n=count(n))
        mean = s["lock_wait_ms"]["mean"] if row.key == "lock_waits" else None
        groups.setdefault(row.group, []).append(text + (f" (mean {ms(mean)})" if mean is not None else ""))
    return [f"  {group}: " + ", ".join(parts) for group, parts in groups.items()]


def _service_lines(name: str, s: dict[str, Any], clock: Any) -> list[str]:
    share = f" ({pct(s['failures_total'] / s['requests'])})" if s["requests"] else ""
    out = [f"{name}: {plural(s['requests'], 'request')}, {count(s['successes'])} succeeded, "
           f"{count(s['failures_total'])} failed{share}"
           + (f", {count(s['in_flight'])} in flight" if s["in_flight"] else "")]
    impact = _impact_line(s, clock)
    if impact:
        out.append(impact)
    kinds = ", ".join(f"{k} {count(v)}" for k, v in s["failures"].items() if v)
    if kinds:
        out.append(f"  failures: {kinds}")
    amp = s["amplification"]
    p99 = s["p99_ms"]
    if p99["during"] is None and p99["before"] is None:
        p99_text = f"p99 over the run {ms(s['latency_ms']['p99'])}"
    else:
        p99_text = f"p99 before/during/after {ms(p99['before'])} / {ms(p99['during'])} / {ms(p99['after'])}"
    amp_text = f"{amp:.2f}" if amp is not None else "– (no request)"
    out.append(f"  amplification {amp_text}; {p99_text}; "
               f"peak pool waiting {count(s['peak_pool_waiting'])}")
    refused = ", ".join(f"{k} {count(v)}" for k, v in s["refused_attempts"].items() if v)
    denied = f"{count(s['retries_denied'])} retries denied by the budget" if s["retries_denied"] else ""
    if refused or denied:
        out.append("  defences: " + "; ".join(x for x in (f"attempts refused at once: {refused}" if refused else "",
                                                          denied) if x))
    if s["crashes"] or s["pods_max"] > 1:
        kills = [f"{count(n)} {what}" for n, what in ((s.get("liveness_restarts", 0), "killed by the liveness probe"),
                                                    (s.get("oom_kills", 0), "OOMKilled")) if n]
        out.append(f"  pods: up to {s['pods_max']}, {count(s['crashes'])} crashes"
                   + (f" ({' and '.join(kills)})" if kills else ""))
    return out + trouble_lines(s)


def _impact_line(s: dict[str, Any], clock: Any) -> Optional[str]:
    hurt = s["impact"]
    if hurt["start_s"] is None:
        return None
    bad = hurt["failed"] + hurt["slow"]
    text = (f"  impact: degraded {clock(hurt['start_s'])}–{clock(hurt['end_s'])}; {count(bad)} bad of "
            f"{count(s['requests'])} ({count(hurt['failed'])} failed, {count(hurt['slow'])} slow)")
    if hurt["budget_share"] is not None:
        text += f", {pct(hurt['budget_share'])} of the error budget"
    if hurt["detected_by"] is not None:
        text += (f"; {hurt['detected_by']} " + ("already firing" if hurt["detected_s"] == 0
                                                 else f"after {span(hurt['detected_s'])}"))
    else:
        text += "; no alert while it lasted"
    return text


def arithmetic_line(a: dict[str, Any]) -> str:
    """The connection rule in one line: `arithmetic: tight: 90 connections at most, ...`."""
    where = {"holds": f"within the {a['alert_limit']:g} at which db_connections_high fires",
             "tight": (f"within the {a['usable']} usable slots but above the {a['alert_limit']:g} "
                       f"at which db_connections_high fires"),
             "fails": f"above the {a['usable']} usable slots"}[a["verdict"]]
    return f"arithmetic: {a['verdict']}: the pools can ask for {a['connections']} connections, {where}"


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The short console summary of a run."""
    end = summary["duration_s"]
    clock = lambda t: format_clock(t, end)  # noqa: E731
    out = [f"outcome: {outcome_sentence(summary, clock)}"
           + (f"; settled {clock(summary['settled_s'])}" if summary["settled_s"] else "")]
    for name, s in summary["services"].items():
        out += _service_lines(name, s, clock)
    db = summary["database"]
    out.append(f"database: peak {db['peak_connections']} of {db['max_connections']} connections, "
               f"{count(db['refused_connects'])} refused connects"
               + (f", peak {count(db['peak_idle_in_transaction'])} idle in transaction"
                  if db["peak_idle_in_transaction"] else ""))
    rep = db.get("replicas") or {}
    if rep.get("count"):
        out.append(f"read replicas: {rep['count']}, each at most {rep['peak_connections']} of {db['max_connections']}"
                   f" connections, {count(rep['refused_connects'])} refused connects, peak CPU {pct(rep['peak_cpu'])}")
    out.append(arithmetic_line(summary["arithmetic"]))
    first: dict[str, Optional[float]] = {}  # each alert's first firing: its lead on the impact
    for a in summary["alerts"]:
        first.setdefault(a["name"] + (f" ({a['service']})" if a["service"] else ""), a["lead_s"])
    fired = [name + (f" {span(lead)} before the impact" if lead else "") for name, lead in first.items()]
    out.append("alerts: " + (", ".join(fired) if fired else "none"))
    return out
