"""The counterfactual post-mortem: run a scenario, and each of the article's defences
that applies to it alone, with common random numbers; say which single change would
have turned the outcome around, and by how much (bad requests, error budget).

`spiralsim postmortem SCENARIO [--set K=V ...] [--seed N] [--out DIR] [--quiet]`
writes `counterfactuals.md`, `counterfactuals.csv`, `overlay.png` and each run's
folder (`baseline/`, one per counterfactual) into `runs/NAME-SEED-postmortem/`.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, TextIO

from ..report.format import cell, pct, plural
from ..report.headline import outcome_sentence
from ..report.terminal import EXIT_OK, bad_input
from ..scenario import ScenarioError, load_scenario
from .compare import BASELINE, Comparison, Progress, _Bar, compare, write_comparison
from .compare_report import rank
from .counterfactuals import Counterfactual, applicable

GOOD = ("stable", "recovered")


@dataclass(frozen=True)
class Counterfactuals:
    """The baseline and its counterfactuals' runs (`comparison`), and the defences by variant name."""

    comparison: Comparison
    defences: dict[str, Counterfactual]


def counterfactual_postmortem(scenario: Any, progress: Optional[Progress] = None) -> Counterfactuals:
    """Run `scenario` and every counterfactual of the registry that applies to it, each alone."""
    found = applicable(scenario)
    comparison = compare(scenario, {cf.key: overrides for cf, overrides in found}, progress)
    return Counterfactuals(comparison, {cf.key: cf for cf, _ in found})


def _bad(summary: dict[str, Any]) -> int:
    return sum(s["impact"]["failed"] + s["impact"]["slow"] for s in summary["services"].values())


def _budget(summary: dict[str, Any]) -> float:
    return max((s["impact"]["budget_share"] or 0.0 for s in summary["services"].values()), default=0.0)


def _versus(base: dict[str, Any], var: dict[str, Any]) -> str:
    """How a counterfactual run stands against what happened."""
    was, now = _bad(base), _bad(var)
    same = var["outcome"] == base["outcome"] and abs(now - was) <= 0.01 * max(was, 1)
    if base["outcome"] not in GOOD and var["outcome"] in GOOD:
        verdict = "**turned it around**"
    elif same:
        verdict = "about the same"
    else:
        verdict = "better" if rank(var) < rank(base) else "worse"
    change = f"{(now - was) / was:+.0%} bad requests" if was else f"{plural(now, 'bad request')}"
    return f"{verdict} ({change})"


def verdict_sentence(cfs: Counterfactuals) -> str:
    """Which single change would have turned the outcome around, or helped most."""
    results = cfs.comparison.results
    base = results[BASELINE].summary
    runs = {k: r.summary for k, r in results.items() if k != BASELINE}
    if not runs:
        return "No defence of the registry applies to this scenario: it has them all, or nothing they defend."
    turned = [k for k, s in runs.items() if base["outcome"] not in GOOD and s["outcome"] in GOOD]
    best = min(runs, key=lambda k: rank(runs[k]))
    if turned:
        names = ", ".join(f"**{cfs.defences[k].name}**" for k in turned)
        return (f"Each of these alone would have turned it around: {names}. The best, "
                f"**{cfs.defences[best].name}**: {outcome_sentence(runs[best])}, "
                f"{plural(_bad(runs[best]), 'bad request')} instead of {_bad(base):,}.")
    if rank(runs[best]) < rank(base):
        return (f"No single change turned the outcome around; the one that helped most was "
                f"**{cfs.defences[best].name}**: {plural(_bad(runs[best]), 'bad request')} instead of "
                f"{_bad(base):,}, {pct(_budget(runs[best]))} of the error budget instead of {pct(_budget(base))}.")
    return "No single change of the registry did better than what happened."


def render_counterfactuals(cfs: Counterfactuals) -> str:
    """counterfactuals.md: what happened, then one row per defence tried alone."""
    base_result = cfs.comparison.results[BASELINE]
    sc, base = base_result.scenario, base_result.summary
    lines = [f"# Counterfactual post-mortem: {sc.name} (seed {sc.seed})", ""]
    if sc.title:
        lines += [f"*{sc.title}*", ""]
    lines += [f"**What happened: {outcome_sentence(base)}**; {plural(_bad(base), 'bad request')}, "
              f"{pct(_budget(base))} of the error budget burned.", "",
              "Each defence below was run alone, on the same requests (the same seed: the same arrivals "
              "and the same work).", "", verdict_sentence(cfs), "",
              "| defence | the change | outcome | bad requests | error budget | against what happened |",
              "|---|---|---|---|---|---|"]
    for key, cf in cfs.defences.items():
        s = cfs.comparison.results[key].summary
        change = ", ".join(f"`{o}`" for o in cfs.comparison.overrides[key])
        lines.append(f"| {cell(cf.name)}: {cell(cf.advice)} | {cell(change)} | {cell(outcome_sentence(s))} | "
                     f"{_bad(s):,} | {pct(_budget(s))} | {cell(_versus(base, s))} |")
    lines += ["", "The overlay figure (`overlay.png`) draws each run in its own colour, what happened in black; "
              "each run's own report is in its folder."]
    return "\n".join(lines) + "\n"


def add_postmortem_command(subparsers: Any) -> argparse.ArgumentParser:
    """`spiralsim postmortem`'s arguments."""
    cmd = subparsers.add_parser("postmortem", help="the run, and each applicable defence alone: which one "
                                "would have turned the outcome around")
    cmd.add_argument("scenario", metavar="SCENARIO", help="scenario file (TOML)")
    cmd.add_argument("--out", metavar="DIR", type=Path, help="folder (default runs/NAME-SEED-postmortem/)")
    cmd.add_argument("--set", metavar="K=V", action="append", default=[], dest="overrides",
                     help="override a scenario key before the counterfactuals (repeatable)")
    cmd.add_argument("--seed", metavar="N", type=int, help="override the scenario's seed")
    cmd.add_argument("--quiet", action="store_true", help="print only the folder")
    return cmd


def run_postmortem(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`spiralsim postmortem`: exit 0, or 2 with one line per problem of the input."""
    try:
        scenario = load_scenario(args.scenario, overrides=tuple(args.overrides), seed=args.seed)
    except ScenarioError as exc:
        return bad_input(exc.errors, err)
    except OSError as exc:
        return bad_input([f"{args.scenario}: cannot read ({exc.strerror or exc})"], err)
    folder = args.out if args.out is not None else Path("runs") / f"{scenario.name}-{scenario.seed}-postmortem"
    bar = _Bar(args.quiet, err)
    try:
        cfs = counterfactual_postmortem(scenario, bar)
    finally:
        bar.close()
    try:
        write_comparison(cfs.comparison, folder)
        (folder / "counterfactuals.md").write_bytes(render_counterfactuals(cfs).encode("utf-8"))
    except OSError as exc:
        return bad_input([f"{folder}: cannot write the post-mortem ({exc.strerror or exc})"], err)
    if not args.quiet:
        print(verdict_sentence(cfs).replace("**", ""), file=out)
    print(folder, file=out)
    return EXIT_OK
