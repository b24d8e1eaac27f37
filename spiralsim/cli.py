"""The command line: `spiralsim run SCENARIO [--out DIR] [--set K=V ...] [--seed N] [--quiet]`.

Thin: parse, call the API, print, write files. Bad input (a scenario error, an
unreadable file) is one line per problem on stderr and exit status 2, never a
traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, TextIO

from .report import summary_lines, write_run
from .scenario import ScenarioError, load_scenario
from .simulate import simulate

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spiralsim",
                                     description="Simulate the connection-pool death spiral.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser("run", help="simulate a scenario and write its run folder")
    run.add_argument("scenario", metavar="SCENARIO", help="scenario file (TOML)")
    run.add_argument("--out", metavar="DIR", type=Path, help="run folder (default runs/NAME-SEED/)")
    run.add_argument("--set", metavar="K=V", action="append", default=[], dest="overrides",
                     help="override a scenario key, e.g. services.api.pool.max=5 (repeatable)")
    run.add_argument("--seed", metavar="N", type=int, help="override the scenario's seed")
    run.add_argument("--quiet", action="store_true", help="print only the run folder")
    return parser


def _error(lines: list[str], err: TextIO) -> int:
    for line in lines:
        print(f"spiralsim: error: {line}", file=err)
    return EXIT_BAD_INPUT


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


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:

    try:
        scenario = load_scenario(args.scenario, overrides=tuple(args.overrides), seed=args.seed)
    except ScenarioError as exc:
        return _error(exc.errors, err)
    except OSError as exc:
        return _error([f"{args.scenario}: cannot read ({exc.strerror or exc})"], err)
    progress = _Progress(args.quiet, err)
    try:
        result = simulate(scenario, progress)
    finally:
        progress.close()
    folder = args.out if args.out is not None else Path("runs") / f"{scenario.name}-{scenario.seed}"
    try:
        write_run(result, folder)
    except OSError as exc:
        return _error([f"{folder}: cannot write the run ({exc.strerror or exc})"], err)
    if not args.quiet:
        for line in summary_lines(result.summary):
            print(line, file=out)
    print(folder, file=out)
    return EXIT_OK


def main(argv: Optional[list[str]] = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse has printed its usage error
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    return _run(args, sys.stdout, sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
