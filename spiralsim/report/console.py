"""The short summary a run prints on the console: the outcome, each service's
figures, the database and the alerts, read from summary.json."""
from __future__ import annotations

from typing import Any, Optional

from ..vocabulary import TROUBLE
from .format import count, ms, pct, plural, span


def trouble_line(s: dict[str, Any]) -> Optional[str]:
    """One service's leaks, orphans, lost writes and server-side kills, the non-zero ones; None if all zero."""
    parts = []
    for row in TROUBLE:
        n = s[row.key]
        if not n:
            continue
        text = (row.one if n == 1 else row.many).format(n=count(n))
        mean = s["lock_wait_ms"]["mean"] if row.key == "lock_waits" else None
        parts.append(text + (f" (mean {ms(mean)})" if mean is not None else ""))
    return "  leaks: " + ", ".join(parts) if parts else None


def _service_lines(name: str, s: dict[str, Any]) -> list[str]:
    share = f" ({pct(s['failures_total'] / s['requests'])})" if s["requests"] else ""
    out = [f"{name}: {plural(s['requests'], 'request')}, {count(s['successes'])} succeeded, "
           f"{count(s['failures_total'])} failed{share}"
           + (f", {count(s['in_flight'])} in flight" if s["in_flight"] else "")]
    kinds = ", ".join(f"{k} {count(v)}" for k, v in s["failures"].items() if v)
    if kinds:
        out.append(f"  failures: {kinds}")
    amp = s["amplification"]
    p99 = s["p99_ms"]
    out.append(f"  amplification {amp if amp is not None else 0:.2f}; p99 before/during/after "
               f"{ms(p99['before'])} / {ms(p99['during'])} / {ms(p99['after'])}; "
               f"peak pool waiting {count(s['peak_pool_waiting'])}")
    if s["crashes"] or s["pods_max"] > 1:
        out.append(f"  pods: up to {s['pods_max']}, {count(s['crashes'])} crashes")
    trouble = trouble_line(s)
    if trouble:
        out.append(trouble)
    return out


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The short console summary of a run."""
    out = [f"outcome: {summary['outcome']}"
           + (f", {span(summary['recovery_s'])} after the last trigger ended"
              if summary["recovery_s"] is not None else "")]
    for name, s in summary["services"].items():
        out += _service_lines(name, s)
    db = summary["database"]
    out.append(f"database: peak {db['peak_connections']} of {db['max_connections']} connections, "
               f"{count(db['refused_connects'])} refused connects"
               + (f", peak {count(db['peak_idle_in_transaction'])} idle in transaction"
                  if db["peak_idle_in_transaction"] else ""))
    first: dict[str, Optional[float]] = {}  # each alert's first firing: its lead on the outage
    for a in summary["alerts"]:
        first.setdefault(a["name"] + (f" ({a['service']})" if a["service"] else ""), a["lead_s"])
    fired = [name + (f" {span(lead)} before the outage" if lead else "") for name, lead in first.items()]
    out.append("alerts: " + (", ".join(fired) if fired else "none"))
    return out
