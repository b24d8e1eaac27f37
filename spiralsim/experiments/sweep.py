"""A sweep: every combination of grid values x seeds, run in parallel, mapped.

    spiralsim sweep SCENARIO --grid KEY=V1,V2,... [--grid ...] [--seeds N] [--workers N]
                    [--dask ADDRESS] [--paired-trigger/--no-paired-trigger] [--set K=V ...]
                    [--out DIR] [--quiet]

Each combination (a cell) runs with the scenario's seed and the next N - 1 on a
`concurrent.futures` executor: local processes, a Dask cluster's executor, or
any the caller passes. When the scenario has a trigger each cell x seed also runs
without it, with the same seed (common random numbers): the pair says whether
the trigger tipped a system that is fine without it (`sweep_map.py`). A grid
value is a `--set` value (a TOML value if it parses as one, else a bare string),
applied as a `KEY=VALUE` override by the worker (`sweep_run.py`).

The out folder holds `results.csv` (a row per run, appended and flushed as runs
finish), `cells.csv` (`sweep_map.cells`) and `map.png`. Run again with the same
folder, a sweep skips the (cell, seed, trigger) runs already in results.csv.
"""
from __future__ import annotations

import argparse
import csv
import itertools
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional, TextIO

import pandas as pd

from ..analysis import triggers
from ..report.terminal import bad_input
from ..scenario import Scenario, ScenarioError, apply_overrides, load_scenario, scenario_to_toml
from .sweep_map import CELLS, cell_lines, cells, draw_map, write_outputs
from .sweep_run import ERROR, ROW_FIELDS, build_scenario, error_fields, literal, run_one

__all__ = ["SweepError", "add_sweep_command", "cells", "check_grid", "draw_map", "plan", "run_sweep", "sweep"]

RESULTS = "results.csv"
Key = tuple[str, int, bool]


class SweepError(ValueError):
    """A sweep that cannot start (its grid, its pairing, its results file); one line."""


def combinations(grid: dict[str, Sequence[Any]]) -> list[tuple[dict[str, Any], tuple[str, ...], str]]:
    """Every cell of the grid, the first key varying slowest: its values, its overrides
    (`KEY=VALUE`) and its id (the overrides joined by `; `)."""
    keys = list(grid)
    out = []
    for values in itertools.product(*(grid[k] for k in keys)):
        overrides = tuple(f"{k}={literal(v)}" for k, v in zip(keys, values))
        out.append((dict(zip(keys, values)), overrides, "; ".join(overrides)))
    return out


def _check_keys(grid: dict[str, Sequence[Any]]) -> None:
    if not grid:
        raise SweepError("the grid is empty: give at least one KEY and its values")
    for key, values in grid.items():
        if key in ROW_FIELDS:
            raise SweepError(f"grid key {key!r} clashes with the results column of that name")
        if isinstance(values, (str, bytes)) or not list(values):
            raise SweepError(f"grid key {key!r}: expected a non-empty list of values")


def paired(scenario: Scenario, paired_trigger: Optional[bool]) -> bool:
    """Whether the sweep pairs runs: by default when the scenario has a trigger."""
    has = bool(triggers(scenario))
    if paired_trigger and not has:
        raise SweepError("paired runs need a trigger: the scenario has no incident and no traffic phase "
                         "above its base rate")
    return has if paired_trigger is None else paired_trigger


def plan(scenario: Scenario, grid: dict[str, Sequence[Any]], seeds: int = 1,
         pair: bool = False) -> list[dict[str, Any]]:
    """The runs of a sweep as plain task dicts (`sweep_run.run_one`'s argument), in map order."""
    _check_keys(grid)
    if seeds < 1:
        raise SweepError(f"seeds: expected at least 1, got {seeds}")
    text = scenario_to_toml(scenario)
    flags = (True, False) if pair else (bool(triggers(scenario)),)
    return [{"text": text, "overrides": overrides, "seed": scenario.seed + i, "trigger": flag,
             "values": values, "cell": cell}
            for values, overrides, cell in combinations(grid) for i in range(seeds) for flag in flags]


def check_grid(scenario: Scenario, grid: dict[str, Sequence[Any]], paired_trigger: Optional[bool] = None) -> None:
    """Validate the first combination of the grid (an unknown key shows here, before any run);
    raises SweepError or ScenarioError."""
    pair = paired(scenario, paired_trigger)
    for task in plan(scenario, grid, 1, pair)[: 2 if pair else 1]:
        build_scenario(task["text"], task["overrides"], task["seed"], task["trigger"])


def task_key(row: dict[str, Any]) -> Optional[Key]:
    """A run's identity for resuming: (cell, seed, trigger); None for a row cut short."""
    try:
        return str(row["cell"]), int(row["seed"]), str(row["trigger"]).lower() == "true"
    except (KeyError, TypeError, ValueError):
        return None


class ResultsFile:
    """results.csv: the runs already done, then each new row appended and flushed.

    A run that ended in `error` is not done: a resumed sweep runs it again (a lost
    worker, a fixed bug) and its new row, appended, is the one that counts."""

    def __init__(self, path: Path, columns: list[str]):
        self.path, self.columns, self.done = path, columns, set()
        if path.exists() and not (data := path.read_bytes()).endswith(b"\n"):
            with path.open("r+b") as cut:  # a line cut short by an interruption: drop it, it runs again
                cut.truncate(data.rfind(b"\n") + 1)
        if path.exists() and path.stat().st_size:
            with path.open(newline="", encoding="utf-8") as file:
                reader = csv.DictReader(file)
                if reader.fieldnames != columns:
                    raise SweepError(f"{path}: from another sweep (columns {reader.fieldnames}); use another --out")
                self.done = {task_key(r) for r in reader if None not in r.values() and r["outcome"] != ERROR}
                self.done.discard(None)
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not path.exists() or not path.stat().st_size
        self.file = path.open("a", newline="", encoding="utf-8")
        self.writer = csv.DictWriter(self.file, columns, extrasaction="ignore")
        if fresh:
            self.writer.writeheader()
            self.file.flush()

    def write(self, row: dict[str, Any]) -> None:
        self.writer.writerow(row)
        self.file.flush()

    def close(self) -> None:
        self.file.close()


@contextmanager
def _executor(executor: Optional[Executor], workers: Optional[int], count: int) -> Iterator[Executor]:
    """The caller's executor, or a pool of `workers` processes (default: the CPU count) for `count` runs."""
    if executor is not None:
        yield executor
        return
    size = max(1, min(workers or os.cpu_count() or 1, count))
    with ProcessPoolExecutor(max_workers=size) as pool:
        yield pool


def _bar(total: int, log: TextIO, show: bool) -> Any:
    """tqdm on `log`, only when it is a terminal (as `spiralsim run`'s progress)."""
    from tqdm import tqdm

    disable = not show or not getattr(log, "isatty", lambda: False)()
    return tqdm(total=total, delay=2, file=log, disable=disable, leave=False, unit="run")


def _failed_row(task: dict[str, Any], exc: BaseException) -> dict[str, Any]:
    """The row of a run whose worker did not return (a lost process, a lost Dask worker)."""
    return {**task["values"], "cell": task["cell"], "seed": task["seed"], "trigger": task["trigger"],
            **error_fields(exc)}


def run_tasks(tasks: list[dict[str, Any]], executor: Executor, on_row: Callable[[dict[str, Any]], None]) -> None:
    """Submit every task and hand each row to `on_row` as it finishes; an interruption cancels the rest."""
    futures = {executor.submit(run_one, task): task for task in tasks}
    try:
        for future in as_completed(futures):
            try:
                row = future.result()
            except Exception as exc:
                row = _failed_row(futures[future], exc)
            on_row(row)
    except BaseException:
        for future in futures:
            future.cancel()
        raise


def _report(log: TextIO) -> Callable[[dict[str, Any]], None]:
    """One line on `log` per failed run (above the progress bar, if one shows)."""
    from tqdm import tqdm

    def report(row: dict[str, Any]) -> None:
        if row["outcome"] == ERROR:
            which = "" if row["trigger"] else ", without the trigger"
            tqdm.write(f"spiralsim: sweep: run failed ({row['cell']}, seed {row['seed']}{which}): "
                       f"{row['outcome_reason']}", file=log)
    return report


def _ordered(frame: pd.DataFrame, tasks: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows of the planned runs, one per run, in plan order."""
    order = {task_key(t): i for i, t in enumerate(tasks)}
    if frame.empty:
        return frame
    index = pd.Series([order.get(task_key(r)) for r in frame.to_dict("records")], index=frame.index)
    frame = frame.assign(_order=index).dropna(subset=["_order"])
    frame = frame.drop_duplicates("_order", keep="last").sort_values("_order")
    return frame.drop(columns="_order").reset_index(drop=True)


def sweep(scenario: Scenario, grid: dict[str, Sequence[Any]], seeds: int = 1, workers: Optional[int] = None,
          executor: Optional[Executor] = None, paired_trigger: Optional[bool] = None,
          out: Optional[str | os.PathLike] = None, log: Optional[TextIO] = None,
          progress: bool = False) -> pd.DataFrame:
    """Run every combination of `grid` (key -> values, as `--set` would take them) x `seeds`
    seeds of `scenario`, and return the runs' rows (columns: the grid keys, then
    `sweep_run.ROW_FIELDS`) in plan order.

    Runs go on `executor` (any `concurrent.futures.Executor`, e.g. a Dask client's
    `get_executor()`), else on a pool of `workers` processes. `paired_trigger`
    (default: when the scenario has a trigger) also runs each cell x seed without
    the trigger. With `out`, results.csv, cells.csv and map.png go there, and runs
    already in its results.csv are not run again. A failing run is a row with
    outcome `error`, reported on `log` (default stderr). Raises SweepError or
    ScenarioError when the first combination does not validate."""
    log = sys.stderr if log is None else log
    check_grid(scenario, grid, paired_trigger)
    pair = paired(scenario, paired_trigger)
    tasks = plan(scenario, grid, seeds, pair)
    keys = list(grid)
    folder = Path(out) if out is not None else None
    file = ResultsFile(folder / RESULTS, keys + list(ROW_FIELDS)) if folder is not None else None
    todo = [t for t in tasks if file is None or task_key(t) not in file.done]
    rows: list[dict[str, Any]] = []
    bar, report = _bar(len(todo), log, progress), _report(log)

    def on_row(row: dict[str, Any]) -> None:
        rows.append(row)
        if file is not None:
            file.write(row)
        report(row)
        bar.update(1)

    try:
        if todo:
            with _executor(executor, workers, len(todo)) as pool:
                run_tasks(todo, pool, on_row)
    finally:
        bar.close()
        if file is not None:
            file.close()
    if folder is None:
        return _ordered(pd.DataFrame(rows, columns=keys + list(ROW_FIELDS)), tasks)
    results = _ordered(pd.read_csv(folder / RESULTS), tasks)
    title = f"{scenario.name}: {len(tasks) // seeds // (2 if pair else 1)} cells x {seeds} seeds" + (
        ", paired with and without the trigger" if pair else "")
    write_outputs(results, folder, keys, title)
    return results


# ---------------------------------------------------------------- the command line

EXIT_OK, EXIT_FAILED_RUNS, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
RUNS = Path("runs")


def _count(text: str) -> int:
    """--seeds, --workers: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def add_sweep_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add `sweep` to the CLI's subparsers (dispatch to `run_sweep(args, out, err)`)."""
    cmd = subparsers.add_parser("sweep", help="run a grid of settings x seeds and map where the system "
                                "stops recovering by itself")
    cmd.add_argument("scenario", metavar="SCENARIO", help="scenario file (TOML)")
    cmd.add_argument("--grid", metavar="KEY=V1,V2,...", action="append", default=[], required=True,
                     help="a scenario key and its values (as --set takes them), repeatable: every combination runs")
    cmd.add_argument("--seeds", metavar="N", type=_count, default=1,
                     help="seeds per cell: the scenario's seed and the next N-1 (default 1)")
    cmd.add_argument("--workers", metavar="N", type=_count, help="local worker processes (default: the CPU count)")
    cmd.add_argument("--dask", metavar="ADDRESS", help="run on the Dask scheduler at ADDRESS instead")
    cmd.add_argument("--paired-trigger", action=argparse.BooleanOptionalAction, default=None,
                     help="also run each cell x seed without the trigger, same seed (default: when there is one)")
    cmd.add_argument("--set", metavar="K=V", action="append", default=[], dest="overrides",
                     help="override a scenario key in every run (repeatable)")
    cmd.add_argument("--out", metavar="DIR", type=Path, help="sweep folder (default runs/NAME-SEED-sweep/); "
                     "an interrupted sweep run again with it resumes")
    cmd.add_argument("--quiet", action="store_true", help="print only the sweep folder")
    return cmd


def split_values(text: str) -> list[str]:
    """`1,2s,[3, 4],"a,b"` -> the four values: commas inside brackets, braces or quotes do not split."""
    parts, depth, quote, start = [], 0, "", 0
    for i, ch in enumerate(text):
        if quote:
            quote = "" if ch == quote and text[i - 1] != "\\" else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return parts + [text[start:]]


def parse_grid(items: Sequence[str]) -> dict[str, list[Any]]:
    """The --grid options as {key: values}; raises SweepError on a malformed one."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        values = [v.strip() for v in split_values(raw)]
        if not sep or not key or any(not v for v in values):
            raise SweepError(f"--grid {item!r}: expected KEY=V1,V2,..., e.g. services.api.pool.max=5,10,20")
        if key in grid:
            raise SweepError(f"--grid {key}: given twice; list all its values in one --grid")
        grid[key] = [apply_overrides({}, [f"v={v}"])["v"] for v in values]
    return grid


def _default_folder(scenario: Scenario) -> Optional[Path]:
    """runs/NAME-SEED-sweep/, or None if that would leave runs/."""
    name = f"{scenario.name}-{scenario.seed}-sweep"
    return RUNS / name if os.path.normpath(RUNS / name) == str(RUNS / name) and "/" not in name else None


def _dask(address: str) -> tuple[Any, Executor]:
    """A Dask client of the scheduler at `address` and its executor; SweepError when it cannot be."""
    try:
        import distributed
    except ImportError:
        raise SweepError("--dask needs the dask distributed package: pip install 'spiralsim[dask]'") from None
    try:
        client = distributed.Client(address, timeout="10s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise SweepError(f"--dask {address}: cannot reach the scheduler ({exc})") from None
    return client, client.get_executor()


def _start(args: argparse.Namespace) -> tuple[Scenario, dict[str, list[Any]], Path]:
    """The scenario, grid and folder of the command, checked; raises SweepError or ScenarioError."""
    grid = parse_grid(args.grid)
    scenario = load_scenario(args.scenario, overrides=tuple(args.overrides))
    folder = args.out if args.out is not None else _default_folder(scenario)
    if folder is None:
        raise SweepError(f"name: {scenario.name!r} would write outside {RUNS}/; set a plain name or use --out DIR")
    check_grid(scenario, grid, args.paired_trigger)
    return scenario, grid, folder


def run_sweep(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`spiralsim sweep`: 0 when every run ran, 1 when some failed (rows with outcome `error`),
    2 on bad input (one line each), 130 when interrupted (run it again to resume)."""
    client, folder = None, args.out
    try:
        scenario, grid, folder = _start(args)
        executor = None
        if args.dask:
            client, executor = _dask(args.dask)
        results = sweep(scenario, grid, args.seeds, args.workers, executor, args.paired_trigger, folder,
                        log=err, progress=not args.quiet)
    except (SweepError, ScenarioError, OSError) as exc:
        return bad_input(exc.errors if isinstance(exc, ScenarioError) else [str(exc)], err)
    except KeyboardInterrupt:
        print(f"spiralsim: sweep interrupted; run it again with --out {folder} to resume", file=err)
        return EXIT_INTERRUPTED
    finally:
        if client is not None:
            client.close()
    if not args.quiet:
        for line in cell_lines(pd.read_csv(folder / CELLS), list(grid)):
            print(line, file=out)
    print(folder, file=out)
    failed = int((results["outcome"] == ERROR).sum())
    if failed:
        print(f"spiralsim: sweep: {failed} of {len(results)} runs failed (outcome error in {RESULTS})", file=err)
    return EXIT_FAILED_RUNS if failed else EXIT_OK
