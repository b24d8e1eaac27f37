"""The command line: `spiralsim run SCENARIO [--out DIR] [--set K=V ...] [--seed N] [--quiet]`.

Thin: parse, call the API, print, write files. Bad input (a scenario error, an
unreadable file) is one line per problem on stderr and exit status 2, never a
traceback.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional, TextIO

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


def _ms(ms: Optional[float]) -> str:
    return "-" if ms is None else (f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.0f} ms")


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The short console summary of a run."""
    out = [f"outcome: {summary['outcome']}"
           + (f", {summary['recovery_s']:g} s after the last trigger ended"
              if summary.get("recovery_s") is not None else "")]
    for name, s in summary["services"].items():
        share = f" ({100 * s['failures_total'] / s['requests']:.1f} %)" if s["requests"] else ""
        out.append(f"{name}: {s['requests']:,} requests, {s['successes']:,} succeeded, "
                   f"{s['failures_total']:,} failed{share}"
                   + (f", {s['in_flight']:,} in flight" if s["in_flight"] else ""))
        kinds = ", ".join(f"{k} {v:,}" for k, v in s["failures"].items() if v)
        if kinds:
            out.append(f"  failures: {kinds}")
        amp = s["amplification"]
        p99 = s["p99_ms"]
        out.append(f"  amplification {amp if amp is not None else 0:.2f}; p99 before/during/after "
                   f"{_ms(p99['before'])} / {_ms(p99['during'])} / {_ms(p99['after'])}; "
                   f"peak pool waiting {s['peak_pool_waiting']:,}")
        if s["crashes"] or s["pods_max"] > 1:
            out.append(f"  pods: up to {s['pods_max']}, {s['crashes']:,} crashes")
    db = summary["database"]
    out.append(f"database: peak {db['peak_connections']} of {db['max_connections']} connections, "
               f"{db['refused_connects']:,} refused connects")
    fired = [a["name"] + (f" ({a['service']})" if a["service"] else "") for a in summary["alerts"]]
    out.append("alerts: " + (", ".join(dict.fromkeys(fired)) if fired else "none"))
    return out


def _run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from .output import write_run
    from .result import simulate
    from .scenario import ScenarioError, load_scenario

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
