"""One run of a sweep, in a worker process: plain data in, a plain row out.

The worker gets the scenario as TOML text, its `--set`-style overrides and a seed,
builds and validates the scenario itself (`scenario_from_toml`), simulates it and
returns a dict of numbers and words: never the Result (its recording and time
series stay in the worker, so a worker's memory is that of one run). A run
"without the trigger" is the same settings with every incident removed and
every traffic phase above its service's base rate dropped, done on the raw
data after the overrides, so a grid over an incident's key still applies.
"""
from __future__ import annotations

import copy
import time
import tomllib
from collections.abc import Sequence
from typing import Any

import tomli_w

from ..scenario import Scenario, ScenarioError, apply_overrides, scenario_from_dict, scenario_from_toml
from ..simulate import simulate

#: The columns of a run's row after the grid keys, in results.csv's order.
ROW_FIELDS = ("cell", "seed", "trigger", "outcome", "outcome_reason", "recovery_s", "degraded_s", "bad",
              "budget_share", "requests", "amplification", "settled_s", "wall_s")

#: The outcome of a run that raised: its message is the row's outcome_reason.
ERROR = "error"


def literal(value: Any) -> str:
    """`value` as a TOML value on one line (what `--set KEY=...` would parse back to it)."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(str(k))} = {literal(v)}" for k, v in value.items()) + "}"
    return tomli_w.dumps({"v": value}).partition("=")[2].strip()


def without_triggers(data: dict, scenario: Scenario) -> dict:
    """A copy of raw scenario data with no incidents and no traffic phase above its base rate.

    `scenario` is `data` validated: it says which phases are above their base rate
    (the raw phases are in file order, as the model's are)."""
    out = copy.deepcopy(data)
    out["incidents"] = []
    for name, service in scenario.services.items():
        traffic = out["services"][name]["traffic"]
        if traffic.get("phases"):
            traffic["phases"] = [raw for raw, phase in zip(traffic["phases"], service.traffic.phases)
                                 if not phase.rate > service.traffic.rate]
    return out


def build_scenario(text: str, overrides: Sequence[str], seed: int, trigger: bool = True) -> Scenario:
    """The scenario of one run: `text` with `overrides` and `seed`, its triggers removed unless `trigger`.

    Raises ScenarioError when the settings do not validate."""
    if trigger:
        return scenario_from_toml(text, overrides, seed)
    data = apply_overrides(tomllib.loads(text), overrides)
    full = scenario_from_dict(data, (), seed)
    return scenario_from_dict(without_triggers(data, full), (), seed)


def summary_row(summary: dict[str, Any], bucket: float) -> dict[str, Any]:
    """A run's figures from its summary.json: the outcome, the degraded seconds (the run's
    degraded buckets), the bad requests (failed + slow, all services), the largest
    error-budget share, the requests, attempts per request and when it settled."""
    services = list(summary["services"].values())
    requests = sum(s["requests"] for s in services)
    attempts = sum(s["attempts"] for s in services)
    return {
        "outcome": summary["outcome"],
        "outcome_reason": summary["outcome_reason"],
        "recovery_s": summary["recovery_s"],
        "degraded_s": round(summary["degraded_buckets"] * bucket, 6),
        "bad": sum(s["impact"]["failed"] + s["impact"]["slow"] for s in services),
        "budget_share": max((s["impact"]["budget_share"] for s in services), default=None),
        "requests": requests,
        "amplification": round(attempts / requests, 3) if requests else None,
        "settled_s": summary["settled_s"],
    }


def error_fields(exc: BaseException) -> dict[str, Any]:
    """The figures of a run that raised: outcome `error`, the message (one line) as its reason."""
    if isinstance(exc, ScenarioError):
        message = "; ".join(exc.errors)
    else:
        message = f"{type(exc).__name__}: {exc}"
    return {"outcome": ERROR, "outcome_reason": " ".join(message.split())}


def run_one(task: dict[str, Any]) -> dict[str, Any]:
    """Simulate one task and return its row; an exception becomes a row with outcome `error`.

    `task` holds `text` (the scenario's TOML), `overrides` (`KEY=VALUE` strings),
    `seed`, `trigger` (False: run without the triggers), and the row's own `values`
    (the grid keys and their values) and `cell` (its id, for resuming)."""
    row: dict[str, Any] = {**task["values"], "cell": task["cell"], "seed": task["seed"],
                           "trigger": task["trigger"]}
    started = time.perf_counter()
    try:
        scenario = build_scenario(task["text"], task["overrides"], task["seed"], task["trigger"])
        row.update(summary_row(simulate(scenario).summary, scenario.bucket))
    except Exception as exc:  # reported as the run's row; the sweep goes on
        row.update(error_fields(exc))
    row["wall_s"] = round(time.perf_counter() - started, 3)
    return row
