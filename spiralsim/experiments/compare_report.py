"""What a comparison says: its table (read from the runs' summaries), comparison.csv,
comparison.md and the console's lines.

comparison.md: a title, the key figures side by side (a row per figure, a
column per run, the baseline first), a sentence per variant (what it changed,
how the outcome and the impact moved against the baseline) and which run did
best. "Best": the better outcome first (stable, then recovered, then
inconclusive, then still down: stuck, overloaded or metastable), then the least
error budget burned by the worst-hit service, then the fewest bad requests
(failed + slow), then the earliest settling. Every figure is read from the
runs' summary.json and said through `spiralsim.report.format`.
"""
from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional

from ..analysis import Result
from ..report.format import cell, clock, count, ms, pct, plural, span
from ..report.headline import detected, outcome_sentence

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["best", "comparison_csv", "comparison_markdown", "comparison_table", "key_lines", "rank"]

OUTCOME_RANK = {"stable": 0, "recovered": 1, "inconclusive": 2}  # any other: still down at the end (3)
#: The console's columns: these, then per service its failed, slow, budget_share and p99 after.
KEY_COLUMNS = ("variant", "outcome", "recovery_s", "settled_s")
KEY_SERVICE_COLUMNS = ("failed", "slow", "budget_share", "p99_after_ms")


# ---------------------------------------------------------------- the table


def _service_figures(s: dict[str, Any]) -> dict[str, Any]:
    hurt, p99 = s["impact"], s["p99_ms"]
    return {
        "requests": s["requests"], "failed": hurt["failed"], "slow": hurt["slow"],
        "failed_share": round(s["failures_total"] / s["requests"], 6) if s["requests"] else None,
        "budget_share": hurt["budget_share"], "impact_start_s": hurt["start_s"], "impact_end_s": hurt["end_s"],
        "degraded_s": hurt["degraded_s"], "detected_s": hurt["detected_s"],
        "p99_during_ms": p99["during"], "p99_after_ms": p99["after"], "amplification": s["amplification"],
        "pods_max": s["pods_max"], "crashes": s["crashes"], "peak_db_connections": s["peak_db_connections"],
    }


#: The table's integer columns without the service prefix; every other figure is a float.
COUNTS = ("requests", "failed", "slow", "pods_max", "crashes", "peak_db_connections",
          "database.peak_connections", "database.refused_connects")
TEXT = ("variant", "overrides", "outcome", "outcome_reason")


def _row(name: str, overrides: Sequence[str], summary: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"variant": name, "overrides": "; ".join(overrides), "outcome": summary["outcome"],
                           "outcome_reason": summary["outcome_reason"], "recovery_s": summary["recovery_s"],
                           "settled_s": summary["settled_s"]}
    for service, s in summary["services"].items():
        row.update({f"{service}.{k}": v for k, v in _service_figures(s).items()})
    db = summary["database"]
    row.update({"database.peak_connections": db["peak_connections"],
                "database.refused_connects": db["refused_connects"]})
    return row


def comparison_table(results: Mapping[str, Result],
                     overrides: Optional[Mapping[str, Sequence[str]]] = None) -> "pd.DataFrame":
    """One row per run, in the order of `results`, read from their summaries (columns: the doc of
    `compare.py`)."""
    import pandas as pd

    overrides = overrides or {}
    rows = [_row(name, overrides.get(name, ()), r.summary) for name, r in results.items()]
    table = pd.DataFrame(rows)
    for column in table.columns:
        if column in TEXT:
            table[column] = table[column].astype(object).where(table[column].notna(), None)
        elif (column.rpartition(".")[2] in COUNTS or column in COUNTS) and table[column].notna().all():
            table[column] = table[column].astype("int64")  # (NaN: a variant without that service)
        else:
            table[column] = table[column].astype("float64")
    return table


# ---------------------------------------------------------------- ranking


def _bad(s: dict[str, Any]) -> int:
    return s["impact"]["failed"] + s["impact"]["slow"]


def _burn(summary: dict[str, Any]) -> tuple[float, str]:
    """The most error budget any service burned, and which service."""
    shares = [(s["impact"]["budget_share"] or 0.0, name) for name, s in summary["services"].items()]
    return max(shares, key=lambda item: item[0])


def rank(summary: dict[str, Any]) -> tuple[float, ...]:
    """Sort key of a run, best first: outcome, worst budget burned, bad requests, settling."""
    settled = summary["settled_s"]
    return (OUTCOME_RANK.get(summary["outcome"], 3), _burn(summary)[0],
            sum(_bad(s) for s in summary["services"].values()), math.inf if settled is None else settled)


def best(results: Mapping[str, Result]) -> list[str]:
    """The runs that did best (several when they tie), in the order of `results`."""
    keys = {name: rank(r.summary) for name, r in results.items()}
    top = min(keys.values())
    return [name for name, key in keys.items() if key == top]


# ---------------------------------------------------------------- the side-by-side table


def _when(summary: dict[str, Any], seconds: Optional[float]) -> str:
    return "not by the end" if seconds is None else clock(seconds, summary["duration_s"])


def _degraded(summary: dict[str, Any], hurt: dict[str, Any]) -> str:
    if hurt["start_s"] is None:
        return "never"
    end = summary["duration_s"]
    return f"{clock(hurt['start_s'], end)}–{clock(hurt['end_s'], end)} ({span(hurt['degraded_s'])})"


def _bad_cell(s: dict[str, Any]) -> str:
    if not s["requests"]:
        return "no requests"
    hurt = s["impact"]
    return (f"{count(_bad(s))} ({pct(_bad(s) / s['requests'])}): "
            f"{count(hurt['failed'])} failed, {count(hurt['slow'])} slow")


Row = tuple[str, Callable[[dict[str, Any]], str]]


def _service_rows(name: str) -> list[Row]:
    def get(summary: dict[str, Any]) -> dict[str, Any]:
        return summary["services"][name]

    def budget(s: dict[str, Any]) -> str:
        return "–" if s["impact"]["budget_share"] is None else pct(s["impact"]["budget_share"])

    return [
        (f"`{name}` requests", lambda m: count(get(m)["requests"])),
        (f"`{name}` bad requests", lambda m: _bad_cell(get(m))),
        (f"`{name}` error budget burned", lambda m: budget(get(m))),
        (f"`{name}` degraded", lambda m: _degraded(m, get(m)["impact"])),
        (f"`{name}` detected", lambda m: detected(get(m)["impact"], "no alert")),
        (f"`{name}` p99 during / after", lambda m: f"{ms(get(m)['p99_ms']['during'])} / "
                                                   f"{ms(get(m)['p99_ms']['after'])}"),
        (f"`{name}` amplification", lambda m: "–" if get(m)["amplification"] is None
         else f"{get(m)['amplification']:.2f}"),
        (f"`{name}` pods (most) / crashes", lambda m: f"{get(m)['pods_max']} / {count(get(m)['crashes'])}"),
        (f"`{name}` peak database connections", lambda m: count(get(m)["peak_db_connections"])),
    ]


def _rows(services: Sequence[str]) -> list[Row]:
    rows: list[Row] = [
        ("outcome", lambda m: outcome_sentence(m, lambda t: clock(t, m["duration_s"])).replace("`", "")),
        ("settled", lambda m: _when(m, m["settled_s"])),
    ]
    for name in services:
        rows += _service_rows(name)
    rows += [
        ("database peak connections", lambda m: f"{count(m['database']['peak_connections'])} of "
                                                f"{count(m['database']['max_connections'])}"),
        ("database refused connects", lambda m: count(m["database"]["refused_connects"])),
    ]
    return rows


def _changes(overrides: Sequence[str]) -> str:
    return "<br>".join(f"`{o}`" for o in overrides) or "–"


def side_by_side(results: Mapping[str, Result], overrides: Mapping[str, Sequence[str]]) -> str:
    """A row per key figure, a column per run (services: those of the baseline, the first run)."""
    names = list(results)
    first = next(iter(results.values())).summary
    lines = ["| | " + " | ".join(f"**{n}**" for n in names) + " |", "|---|" + "---|" * len(names),
             "| changes | " + " | ".join(_changes(overrides.get(n, ())) for n in names) + " |"]
    for label, read in _rows(list(first["services"])):
        values = [read(r.summary) if _has_services(r.summary, label, first) else "–" for r in results.values()]
        lines.append(f"| {label} | " + " | ".join(cell(v) for v in values) + " |")
    return "\n".join(lines)


def _has_services(summary: dict[str, Any], label: str, first: dict[str, Any]) -> bool:
    """A variant that renamed or dropped a service has no figures in that service's rows."""
    return all(f"`{s}`" not in label or s in summary["services"] for s in first["services"])


# ---------------------------------------------------------------- the sentences


def _short_outcome(summary: dict[str, Any]) -> str:
    rec = summary["recovery_s"]
    if summary["outcome"] != "recovered" or rec is None or not summary["triggers"]:
        return summary["outcome"]
    if rec == 0:
        return "recovered as the last trigger ended"
    return f"recovered {span(abs(rec))} {'after' if rec > 0 else 'before'} the last trigger ended"


def _moved(before: float, after: float, show: Callable[[float], str]) -> str:
    if before == after:
        return f"unchanged at {show(after)}"
    change = f" ({100.0 * (after - before) / before:+.1f} %)".replace("-", "−") if before else ""
    return f"{show(before)} → {show(after)}{change}"


def _impact_moved(base: dict[str, Any], var: dict[str, Any]) -> list[str]:
    parts = []
    several = len(base["services"]) > 1
    for name, b in base["services"].items():
        v = var["services"].get(name)
        if v is None:
            parts.append(f"`{name}` is not in it")
            continue
        who = f"`{name}`: " if several else ""
        budget = ""
        if b["impact"]["budget_share"] is not None and v["impact"]["budget_share"] is not None:
            budget = ", error budget burned " + _moved(b["impact"]["budget_share"], v["impact"]["budget_share"], pct)
        parts.append(f"{who}bad requests {_moved(_bad(b), _bad(v), count)}{budget}")
    return parts


def variant_sentence(name: str, overrides: Sequence[str], base: dict[str, Any], var: dict[str, Any]) -> str:
    """`**NAME** (`K=V`): OUTCOME moved; bad requests A → B (−x %), error budget burned ...`."""
    changes = ", ".join(f"`{o}`" for o in overrides) or "no overrides"
    was, now = _short_outcome(base), _short_outcome(var)
    outcome = f"still {now}" if was == now else f"{was} → {now}"
    return f"**{name}** ({changes}): {outcome}; " + "; ".join(_impact_moved(base, var)) + "."


def best_sentence(results: Mapping[str, Result]) -> str:
    baseline = next(iter(results))
    top = best(results)
    if baseline in top:
        return ("No variant did better than the baseline." if len(top) == 1 else
                "No variant did better than the baseline; " + ", ".join(f"**{n}**" for n in top[1:])
                + " did as well.")
    summary = results[top[0]].summary
    burn, worst = _burn(summary)
    bad = sum(_bad(s) for s in summary["services"].values())
    who = " and ".join(f"**{n}**" for n in top) + (" did best" if len(top) == 1 else " did equally best")
    by = f" (`{worst}`)" if len(summary["services"]) > 1 and burn > 0 else ""
    return (f"{who}: {_short_outcome(summary)}, {pct(burn)} of the error budget burned{by}, "
            f"{plural(bad, 'bad request')}.")


def comparison_markdown(results: Mapping[str, Result], overrides: Mapping[str, Sequence[str]]) -> str:
    """comparison.md (the module's doc); `results` the baseline first."""
    runs = list(results.values())
    base = runs[0]
    sc = base.scenario
    head = f"# Comparison: {sc.title or sc.name}"
    intro = (f"`{sc.name}`, seed {sc.seed}: the baseline and {len(runs) - 1} variant"
             f"{'' if len(runs) == 2 else 's'}, every run with the same seed, so the same arrivals and the same"
             " statement work (common random numbers): a difference between two columns is the variant's, not"
             " chance's. Bad requests are those that failed or were slow (their p99 threshold).")
    sentences = [f"- {variant_sentence(n, overrides.get(n, ()), base.summary, r.summary)}"
                 for n, r in list(results.items())[1:]]
    parts = [head, intro, "## Key figures", side_by_side(results, overrides),
             "## What each variant changed", "\n".join(sentences), "## Best", best_sentence(results)]
    return "\n\n".join(parts) + "\n"


# ---------------------------------------------------------------- CSV and console


def _csv_cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.10g}"
    return str(value)


def comparison_csv(table: "pd.DataFrame") -> str:
    """comparison.csv: the table, integers without a point, other numbers to 10 digits, null empty."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(table.columns))
    for row in table.itertuples(index=False):
        writer.writerow([_csv_cell(v.item() if hasattr(v, "item") else v) for v in row])
    return buf.getvalue()


def key_lines(table: "pd.DataFrame") -> list[str]:
    """The table's key columns as text, a line per run: outcome, recovery, settling, and per
    service its failed and slow requests, its budget burned and its p99 after."""
    services = [c[: -len(".failed")] for c in table.columns if c.endswith(".failed")]
    columns = list(KEY_COLUMNS) + [f"{s}.{k}" for s in services for k in KEY_SERVICE_COLUMNS]
    text = table[[c for c in columns if c in table.columns]].to_string(
        index=False, na_rep="–", float_format=lambda v: f"{v:g}")
    return text.splitlines()
