"""Compare: a scenario (the baseline) and named variants of it, run side by side.

A variant is a name and `--set`-style overrides (`"services.api.pool.max=5"`),
applied to the baseline's resolved scenario (`scenario_to_toml`), so they get
every check a scenario file gets. Every run keeps the baseline's seed: the named
random streams (`spiralsim/model/rng.py`) then give every run the same arrivals
and the same statement work (common random numbers), so a difference between
two rows is the variant's, not chance's; a variant that changes nothing gives
the baseline's results exactly. (A variant may override `seed`; it then gives
up that pairing.)

`compare(scenario, variants)` returns a `Comparison`: `.results` (name ->
`Result`, the baseline first, named `baseline`) and `.table`, one row per run
in that order, read from each run's summary.json (docs/reference.md §4), never
recomputed. Its columns: `variant`, `overrides` (`; `-joined), `outcome`,
`outcome_reason`, `recovery_s`, `settled_s`; per service, always prefixed
`NAME.` (one service or several): `requests`, `failed`, `slow`,
`failed_share` (failed / requests), `budget_share`, `impact_start_s`,
`impact_end_s`, `degraded_s`, `detected_s`, `p99_during_ms`, `p99_after_ms`,
`amplification`, `pods_max`, `crashes`, `peak_db_connections`; then
`database.peak_connections` and `database.refused_connects`. Counts are
integers, other figures floats (NaN where the summary says null).

The command (`add_compare_command`, `run_compare`, wired by cli.py):
`spiralsim compare SCENARIO [--variant NAME:KEY=VAL[,KEY=VAL...]] ... [--set K=V ...]
[--seed N] [--out DIR] [--max-requests N] [--quiet]` writes comparison.csv,
comparison.md (`compare_report.py`), overlay.png (`overlay.py`) and each run's
folder (`baseline/`, `NAME/`) into `runs/NAME-SEED-compare/` or `--out`.
"""
from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, TextIO, Union

from ..analysis import Result
from ..report import write_run
from ..report.terminal import EXIT_OK, bad_input, max_requests
from ..scenario import (
    MAX_REQUESTS,
    Scenario,
    ScenarioError,
    bucket_problem,
    load_scenario,
    scenario_from_dict,
    scenario_to_toml,
    workload_problem,
)
from ..scenario.models import BASELINE, VariantConfig, check_variant_name
from ..simulate import simulate
from .compare_report import comparison_csv, comparison_markdown, comparison_table, key_lines

if TYPE_CHECKING:  # pandas loads when a comparison is tabled, not when spiralsim is imported
    import pandas as pd

__all__ = ["BASELINE", "Comparison", "Variants", "add_compare_command", "compare", "comparison_table",
           "parse_variant", "run_compare", "variant_scenario", "variant_scenarios", "write_comparison"]

#: name -> overrides, or (name, overrides) pairs, or the scenario's own `[[variants]]`.
Variants = Union[Mapping[str, Sequence[str]], Sequence[tuple[str, Sequence[str]]], Sequence[VariantConfig]]
#: progress(name of the run going on, fraction of all the runs done)
Progress = Callable[[str, float], None]

RUNS = Path("runs")


@dataclass(frozen=True, eq=False)  # (a DataFrame has no truth value to compare by)
class Comparison:
    """The runs of a comparison: `results` and `overrides` by name (`baseline` first, its
    overrides empty), `table` one row per run in that order (see the module's doc)."""

    table: "pd.DataFrame"
    results: dict[str, Result]
    overrides: dict[str, tuple[str, ...]]

    @property
    def baseline(self) -> Result:
        return self.results[BASELINE]

    def markdown(self) -> str:
        """comparison.md: the key figures side by side, what each variant changed, the best."""
        return comparison_markdown(self.results, self.overrides)


# ---------------------------------------------------------------- building the variants


def _pairs(scenario: Scenario, variants: Optional[Variants]) -> list[tuple[Any, Any]]:
    if variants is None:
        variants = scenario.variants
    if isinstance(variants, Mapping):
        return list(variants.items())
    return [(v.name, v.set) if isinstance(v, VariantConfig) else tuple(v) for v in variants]


def _variant_list(scenario: Scenario, variants: Optional[Variants]) -> dict[str, tuple[str, ...]]:
    """name -> overrides, in order; ScenarioError naming every bad name or override list."""
    out: dict[str, tuple[str, ...]] = {}
    problems = []
    for name, overrides in _pairs(scenario, variants):
        try:
            if not isinstance(name, str):
                raise ValueError(f"must be a string, got {name!r}")
            check_variant_name(name)
        except ValueError as exc:
            problems.append(f"variant {name!r}: name {exc}")
            continue
        if name in out:
            problems.append(f"variant {name}: given more than once; each variant needs its own name")
        elif isinstance(overrides, str) or not all(isinstance(o, str) for o in overrides):
            problems.append(f"variant {name}: overrides must be a list of KEY=VALUE strings, got {overrides!r}")
        else:
            out[name] = tuple(overrides)
    if problems:
        raise ScenarioError(problems)
    return out


def variant_scenario(scenario: Scenario, name: str, overrides: Sequence[str]) -> Scenario:
    """The baseline with `overrides` applied (its name and seed kept unless overridden, its
    `variants` dropped); a ScenarioError's lines start `variant NAME: `."""
    data = tomllib.loads(scenario_to_toml(scenario))
    data["variants"] = []
    try:
        return scenario_from_dict(data, overrides)
    except ScenarioError as exc:
        raise ScenarioError([f"variant {name}: {line}" for line in exc.errors]) from None


def variant_scenarios(scenario: Scenario, variants: Optional[Variants] = None) -> dict[str, Scenario]:
    """`baseline` (the scenario itself) then each variant's scenario, in order; every problem
    of every variant at once in one ScenarioError. No variants given: `scenario.variants`."""
    wanted = _variant_list(scenario, variants)
    out: dict[str, Scenario] = {BASELINE: scenario}
    problems: list[str] = []
    for name, overrides in wanted.items():
        try:
            out[name] = variant_scenario(scenario, name, overrides)
        except ScenarioError as exc:
            problems += exc.errors
    if problems:
        raise ScenarioError(problems)
    return out


# ---------------------------------------------------------------- running and tabling


def compare(scenario: Scenario, variants: Optional[Variants] = None,
            progress: Optional[Progress] = None) -> Comparison:
    """Run `scenario` and each variant (name -> `--set` overrides; none given: the scenario's
    `[[variants]]`) with the same seed, and table them. Raises ScenarioError, before any
    run, listing every bad variant (`variant NAME: ...`)."""
    scenarios = variant_scenarios(scenario, variants)
    wanted = {BASELINE: (), **_variant_list(scenario, variants)}
    results: dict[str, Result] = {}
    for i, (name, sc) in enumerate(scenarios.items()):
        tick = None if progress is None else _tick(progress, name, i, len(scenarios))
        results[name] = simulate(sc, tick)
    return Comparison(comparison_table(results, wanted), results, wanted)


def _tick(progress: Progress, name: str, i: int, n: int) -> Callable[[float], None]:
    return lambda fraction: progress(name, (i + fraction) / n)


# ---------------------------------------------------------------- the command


def _split_overrides(text: str) -> list[str]:
    """Split at the commas outside brackets, braces and quotes: `a=[1, 2],b="x,y"` is two."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [p.strip() for p in parts + [text[start:]]]


def parse_variant(text: str) -> tuple[str, tuple[str, ...]]:
    """`NAME:KEY=VAL[,KEY=VAL...]` -> (NAME, (KEY=VAL, ...)). Commas inside a TOML array, inline
    table or quoted string do not split (`x=[1, 2]` stays whole). ValueError says what is wrong."""
    name, sep, rest = text.partition(":")
    name = name.strip()
    if not sep or not name or not rest.strip():
        raise ValueError("expected NAME:KEY=VAL[,KEY=VAL...], e.g. capped:services.api.autoscaler.max_replicas=4")
    try:
        check_variant_name(name)
    except ValueError as exc:
        raise ValueError(f"the name {exc}") from None
    overrides = tuple(_split_overrides(rest))
    bad = [o for o in overrides if "=" not in o or not o.partition("=")[0].strip()]
    if bad:
        raise ValueError(f"expected KEY=VAL after {name}:, got {bad[0]!r}")
    return name, overrides


def add_compare_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add `compare` to the CLI's subparsers (run it with `run_compare(args, out, err)`)."""
    cmd = subparsers.add_parser(
        "compare", help="run a scenario and variants of it with the same seed, side by side",
        description="Run SCENARIO (the baseline) and each variant with the same seed (same arrivals, same"
                    " statement work) and write comparison.csv, comparison.md, overlay.png and each run's folder.")
    cmd.add_argument("scenario", metavar="SCENARIO", help="scenario file (TOML)")
    cmd.add_argument("--variant", metavar="NAME:KEY=VAL[,KEY=VAL...]", action="append", default=[],
                     dest="variants", help="a variant: a name and overrides (repeatable; the same NAME again adds"
                                           " overrides); given, the file's [[variants]] are not run")
    cmd.add_argument("--set", metavar="K=V", action="append", default=[], dest="overrides",
                     help="override a key of the baseline, and so of every variant (repeatable)")
    cmd.add_argument("--seed", metavar="N", type=int, help="override the scenario's seed (every run keeps it)")
    cmd.add_argument("--out", metavar="DIR", type=Path, help="output folder (default runs/NAME-SEED-compare/)")
    cmd.add_argument("--max-requests", metavar="N", type=max_requests, default=MAX_REQUESTS,
                     help=f"refuse a run expecting more user requests than this (default {MAX_REQUESTS:g})")
    cmd.add_argument("--quiet", action="store_true", help="print only the output folder")
    return cmd


def _cli_variants(texts: Sequence[str]) -> tuple[dict[str, list[str]], list[str]]:
    """The --variant options by name (a name given again adds its overrides), and the problems."""
    found: dict[str, list[str]] = {}
    problems = []
    for text in texts:
        try:
            name, overrides = parse_variant(text)
        except ValueError as exc:
            problems.append(f"--variant {text!r}: {exc}")
            continue
        found.setdefault(name, []).extend(overrides)
    return found, problems


def _default_folder(scenario: Scenario) -> Optional[Path]:
    """runs/NAME-SEED-compare/, or None if that path would leave runs/."""
    leaf = f"{scenario.name}-{scenario.seed}-compare"
    folder = RUNS / leaf
    return folder if Path(os.path.normpath(folder)).parent == RUNS and folder.name == leaf else None


def _too_much(scenarios: Mapping[str, Scenario], max_requests: float) -> list[str]:
    problems = []
    for name, sc in scenarios.items():
        prefix = "" if name == BASELINE else f"variant {name}: "
        too_big = workload_problem(sc, max_requests)
        if too_big is not None:
            problems.append(f"{prefix}{too_big}; raise it with --max-requests N")
        too_fine = bucket_problem(sc)
        if too_fine is not None:
            problems.append(prefix + too_fine)
    return problems


def _plan(args: argparse.Namespace) -> tuple[Scenario, dict[str, list[str]], Path] | list[str]:
    """The baseline, the variants and the output folder, or every line saying why not."""
    wanted, problems = _cli_variants(args.variants)
    try:
        scenario = load_scenario(args.scenario, overrides=tuple(args.overrides), seed=args.seed)
    except ScenarioError as exc:
        return problems + exc.errors
    except OSError as exc:
        return problems + [f"{args.scenario}: cannot read ({exc.strerror or exc})"]
    variants = wanted if args.variants else {v.name: list(v.set) for v in scenario.variants}
    if not variants and not problems:
        problems.append(f"{args.scenario}: no variants to compare; give --variant NAME:KEY=VAL or"
                        " [[variants]] in the file")
    try:
        problems += _too_much(variant_scenarios(scenario, variants), args.max_requests)
    except ScenarioError as exc:
        problems += exc.errors
    folder = args.out if args.out is not None else _default_folder(scenario)
    if folder is None:
        problems.append(f"name: {scenario.name!r} would write outside {RUNS}/; set a plain name or use --out DIR")
    return problems if problems or folder is None else (scenario, variants, folder)


class _Bar:
    """tqdm on stderr over the runs (the run going on as its label); only on a terminal."""

    def __init__(self, quiet: bool, err: TextIO):
        from tqdm import tqdm

        disable = quiet or not getattr(err, "isatty", lambda: False)()
        self.bar = tqdm(total=1000, file=err, disable=disable, leave=False,
                        bar_format="{desc} {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")
        self.done = 0

    def __call__(self, name: str, fraction: float) -> None:
        self.bar.set_description_str(name, refresh=False)
        target = min(1000, max(0, int(fraction * 1000)))
        if target > self.done:
            self.bar.update(target - self.done)
            self.done = target

    def close(self) -> None:
        self.bar.close()


def write_comparison(comparison: Comparison, folder: Path) -> Path:
    """comparison.csv, comparison.md, overlay.png and each run's folder, into `folder`."""
    from .overlay import overlay

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, result in comparison.results.items():
        write_run(result, folder / name)
    (folder / "comparison.csv").write_bytes(comparison_csv(comparison.table).encode("utf-8"))
    (folder / "comparison.md").write_bytes(comparison.markdown().encode("utf-8"))
    overlay(comparison, folder / "overlay.png")
    return folder


def run_compare(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`spiralsim compare`: exit 0, or 2 with one line per problem of the input."""
    planned = _plan(args)
    if isinstance(planned, list):
        return bad_input(planned, err)
    scenario, variants, folder = planned
    bar = _Bar(args.quiet, err)
    try:
        comparison = compare(scenario, variants, bar)
    finally:
        bar.close()
    try:
        write_comparison(comparison, folder)
    except OSError as exc:
        return bad_input([f"{folder}: cannot write the comparison ({exc.strerror or exc})"], err)
    if not args.quiet:
        for line in key_lines(comparison.table):
            print(line, file=out)
    print(folder, file=out)
    return EXIT_OK
