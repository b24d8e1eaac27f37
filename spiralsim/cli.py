"""The command line: `spiralsim run SCENARIO [--out DIR] [--set K=V ...] [--seed N] [--max-requests N] [--quiet]`,
`spiralsim check SCENARIO [--set K=V ...] [--json]`, and the experiments: `compare`, `sweep` and
`postmortem` (spiralsim/experiments/).

Thin: parse, call the API, print, write files. Bad input (a scenario error, an
unreadable file, a run too big to simulate) is one line per problem on stderr
and exit status 2, never a traceback. The default run folder is always inside
`runs/`; only `--out` chooses another. `check` exits 1 when a rule fails; `run`
prints the failed rules on stderr before it runs (not with `--quiet`).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional, TextIO

from .experiments.compare import add_compare_command, run_compare
from .experiments.postmortem import add_postmortem_command, run_postmortem
from .experiments.sweep import add_sweep_command, run_sweep
from .report import summary_lines, write_run
from .report.check import check, check_document, check_lines, exit_status, failed_lines
from .report.terminal import EXIT_BAD_INPUT, EXIT_OK, bad_input, max_requests
from .scenario import MAX_REQUESTS, Scenario, ScenarioError, bucket_problem, load_scenario, workload_problem
from .simulate import simulate

RUNS = Path("runs")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spiralsim",
                                     description="Simulate the connection-pool death spiral.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="simulate a scenario and write its run folder")
    run.add_argument("scenario", metavar="SCENARIO", help="scenario file (TOML)")
    run.add_argument("--out", metavar="DIR", type=Path, help="run folder (default runs/NAME-SEED/)")
    run.add_argument("--set", metavar="K=V", action="append", default=[], dest="overrides",
                     help="override a scenario key, e.g. services.api.pool.max=5; K=null removes it (repeatable)")
    run.add_argument("--seed", metavar="N", type=int, help="override the scenario's seed")
    run.add_argument("--max-requests", metavar="N", type=max_requests, default=MAX_REQUESTS,
                     help=f"refuse a scenario expecting more user requests than this (default {MAX_REQUESTS:g})")
    run.add_argument("--quiet", action="store_true", help="print only the run folder")
    chk = sub.add_parser("check", help="the article's arithmetic on a scenario, before any run; exit 1 if a rule fails")
    chk.add_argument("scenario", metavar="SCENARIO", help="scenario file (TOML)")
    chk.add_argument("--set", metavar="K=V", action="append", default=[], dest="overrides",
                     help="override a scenario key, e.g. services.api.pool.max=5; K=null removes it (repeatable)")
    chk.add_argument("--json", action="store_true", help="print the findings as JSON, for scripts")
    add_compare_command(sub)
    add_sweep_command(sub)
    add_postmortem_command(sub)
    return parser


class _Progress:
    """tqdm on stderr, fed by simulate's progress(fraction); shows only after 2 s."""

    def __init__(self, quiet: bool, err: TextIO):
        from tqdm import tqdm

        disable = quiet or not getattr(err, "isatty", lambda: False)()
        self.bar = tqdm(total=1000, delay=2, file=err, disable=disable, leave=False,
                        unit="‰", bar_format="{l_bar}{bar}| {elapsed}<{remaining}")
        self.done = 0

    def __call__(self, fraction: float) -> None:
        target = min(1000, max(0, int(fraction * 1000)))
        if target > self.done:
            self.bar.update(target - self.done)
            self.done = target

    def close(self) -> None:
        self.bar.close()


def _default_folder(scenario: Scenario) -> Path | None:
    """runs/NAME-SEED/, or None if that path would leave runs/ (a name the scenario layer lets through)."""
    folder = RUNS / f"{scenario.name}-{scenario.seed}"
    inside = Path(os.path.normpath(folder)).parent == RUNS and folder.name == f"{scenario.name}-{scenario.seed}"
    return folder if inside else None


def _read(args: argparse.Namespace) -> Scenario | list[str]:
    """The scenario with its overrides (and `--seed`, if the command has it), or the lines saying why not."""
    try:
        return load_scenario(args.scenario, overrides=tuple(args.overrides), seed=getattr(args, "seed", None))
    except ScenarioError as exc:
        return exc.errors
    except OSError as exc:
        return [f"{args.scenario}: cannot read ({exc.strerror or exc})"]


def _load(args: argparse.Namespace) -> tuple[Scenario, Path] | list[str]:
    """The scenario to simulate and its run folder, or the lines saying why not
    (invalid, too much work, or a default folder outside runs/)."""
    scenario = _read(args)
    if isinstance(scenario, list):
        return scenario
    problems = []
    too_big = workload_problem(scenario, args.max_requests)
    if too_big is not None:
        problems.append(f"{too_big}; raise it with --max-requests N")
    too_fine = bucket_problem(scenario)
    if too_fine is not None:
        problems.append(too_fine)
    folder = args.out if args.out is not None else _default_folder(scenario)
    if folder is None:
        problems.append(f"name: {scenario.name!r} would write outside {RUNS}/; set a plain name or use --out DIR")
    return problems if problems or folder is None else (scenario, folder)


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    loaded = _load(args)
    if isinstance(loaded, list):
        return bad_input(loaded, err)
    scenario, folder = loaded
    if not args.quiet:
        for line in failed_lines(check(scenario)):
            print(f"spiralsim: {line}", file=err)
    progress = _Progress(args.quiet, err)
    try:
        result = simulate(scenario, progress)
    finally:
        progress.close()
    try:
        write_run(result, folder)
    except OSError as exc:
        return bad_input([f"{folder}: cannot write the run ({exc.strerror or exc})"], err)
    if not args.quiet:
        for line in summary_lines(result.summary):
            print(line, file=out)
    print(folder, file=out)
    return EXIT_OK


def _check(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    scenario = _read(args)
    if isinstance(scenario, list):
        return bad_input(scenario, err)
    findings = check(scenario)
    if args.json:
        print(json.dumps(check_document(scenario, findings), indent=2, allow_nan=False), file=out)
    else:
        for line in check_lines(findings):
            print(line, file=out)
    return exit_status(findings)


def main(argv: Optional[list[str]] = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed its usage error
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    commands = {"run": _run, "check": _check, "compare": run_compare, "sweep": run_sweep,
                "postmortem": run_postmortem}
    try:
        return commands[args.command](args, sys.stdout, sys.stderr)
    except BrokenPipeError:  # `spiralsim check ... | head` closed the pipe: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
