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


def _span(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{seconds:g} s"
    h, rest = divmod(s, 3600)
    return f"{h} h {rest // 60} min" if h else f"{rest // 60} min {rest % 60} s"


def _n(count: int, one: str, many: str) -> str:
    return f"{count:,} {one if count == 1 else many}"


def trouble_line(s: dict[str, Any]) -> Optional[str]:
    """One service's leaks, orphans, lost writes and server-side kills, the non-zero ones; None if all zero."""
    parts = []
    if s.get("leaked"):
        parts.append(_n(s["leaked"], "leaked connection", "leaked connections"))
    if s.get("orphaned"):
        parts.append(_n(s["orphaned"], "orphaned transaction", "orphaned transactions"))
    if s.get("foreign_statements"):
        parts.append(_n(s["foreign_statements"], "statement", "statements") + " in another request's transaction")
    if s.get("lost_writes"):
        parts.append(_n(s["lost_writes"], "request's writes", "requests' writes") + " lost")
    if s.get("lock_waits"):
        mean = (s.get("lock_wait_ms") or {}).get("mean")
        parts.append(_n(s["lock_waits"], "lock wait", "lock waits") + (f" (mean {_ms(mean)})" if mean is not None else ""))
    if s.get("sessions_killed"):
        parts.append(_n(s["sessions_killed"], "session", "sessions") + " killed idle in transaction")
    if s.get("terminated"):
        parts.append(_n(s["terminated"], "connection", "connections") + " dropped by the database")
    if s.get("peak_pool_dead"):
        parts.append(f"up to {_n(s['peak_pool_dead'], 'dead client', 'dead clients')} in the pool")
    return "  leaks: " + ", ".join(parts) if parts else None


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
        trouble = trouble_line(s)
        if trouble:
            out.append(trouble)
    db = summary["database"]
    out.append(f"database: peak {db['peak_connections']} of {db['max_connections']} connections, "
               f"{db['refused_connects']:,} refused connects"
               + (f", peak {db['peak_idle_in_transaction']:,} idle in transaction"
                  if db.get("peak_idle_in_transaction") else ""))
    first: dict[str, Optional[float]] = {}  # each alert's first firing: its lead on the outage
    for a in summary["alerts"]:
        first.setdefault(a["name"] + (f" ({a['service']})" if a["service"] else ""), a.get("lead_s"))
    fired = [name + (f" {_span(lead)} before the outage" if lead else "") for name, lead in first.items()]
    out.append("alerts: " + (", ".join(fired) if fired else "none"))
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
