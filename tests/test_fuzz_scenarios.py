"""Fuzzing the command line with broken shipped scenarios: whatever the file says,
`spiralsim run` exits 0 or 2, never with a traceback, and a run it finishes loses
no request.

Each example takes a shipped scenario (scenarios/*.toml), squeezes its timeline into
at most 20 s (duration, phases, incidents and the pod schedule scaled alike, so the
story still happens), applies one to three random mutations (drop a key, a number
made negative, zero, huge, a float or a string, an unknown key, a value of another
type, a window made backwards) and runs it through `spiralsim.cli.main`.
"""
from __future__ import annotations

import contextlib
import copy
import io
import json
import signal
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spiralsim.cli import EXIT_BAD_INPUT, EXIT_OK, main
from spiralsim.scenario.durations import format_duration, parse_duration

SCENARIOS = sorted((Path(__file__).resolve().parent.parent / "scenarios").glob("*.toml"))
MAX_DURATION = 20.0  # s of simulated time, so a run takes about a second
TIME_KEYS = {"start", "end", "at"}  # times on the scenario's timeline, scaled with its duration
TIME_LIMIT = 60  # s of wall-clock time for one run; longer is a failure (the work check missed it)

#: Keys whose huge values make a valid scenario that never finishes (pods, statements or
#: connections by the 10**18, which the work estimate does not count yet); "huge" skips them.
#: Likewise a huge `duration` with no traffic (buckets by the 10**18): the duration is
#: always cut to MAX_DURATION after the mutations.
UNBOUNDED = {"replicas", "min_replicas", "statements", "warm_connections"}

Key = tuple[Any, ...]  # a path in the data: ("services", "api", "traffic", "phases", 0)


def squeezed(data: dict) -> dict:
    """The scenario with its timeline scaled into MAX_DURATION (nothing changes if it is shorter)."""
    factor = MAX_DURATION / parse_duration(data["duration"])
    if factor >= 1:
        return data

    def scale(node: Any, key: Any = None) -> Any:
        if isinstance(node, dict):
            return {k: scale(v, k) for k, v in node.items()}
        if isinstance(node, list):
            return [scale(v) for v in node]
        if key in TIME_KEYS:
            return format_duration(parse_duration(node) * factor)
        return node

    return {**scale(data), "duration": format_duration(MAX_DURATION)}


def paths(node: Any, here: Key = ()) -> Iterator[tuple[Key, Any]]:
    """Every (path, value) below `node`, tables and lists included."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield (*here, key), value
        yield from paths(value, (*here, key))


def parent(data: dict, path: Key) -> Any:
    """The table or list holding `path`'s last key."""
    for key in path[:-1]:
        data = data[key]
    return data


def is_number(value: Any) -> bool:
    """An integer or a float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_duration(value: Any) -> bool:
    """A duration string like "5s" (a number of seconds is a number)."""
    try:
        return isinstance(value, str) and parse_duration(value) >= 0
    except ValueError:
        return False


OTHER_TYPES = [True, "text", 7, 2.5, [], {}, [1, "a"], {"x": 1}, "5s"]


def numeric(kind: str, value: Any) -> Any:
    """A number (or a duration string) changed the `kind` way."""
    seconds = parse_duration(value) if isinstance(value, str) else value
    if kind == "negative":
        return -seconds if seconds else -1
    if kind == "zero":
        return 0
    if kind == "huge":
        return 10**18 if isinstance(value, int) else 1e308
    if kind == "float":
        return seconds + 0.5
    return str(value) + "x" if isinstance(value, str) else str(value)


@st.composite
def mutated(draw: st.DrawFn) -> dict:
    """A shipped scenario, squeezed, with one to three mutations."""
    data = squeezed(tomllib.loads(draw(st.sampled_from(SCENARIOS)).read_text(encoding="utf-8")))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["drop", "negative", "zero", "huge", "float", "string",
                                     "unknown", "swap", "backwards"]))
        mutate(draw, data, kind)
    duration = data.get("duration")
    if (is_number(duration) or is_duration(duration)) and parse_duration(duration) > MAX_DURATION:
        data["duration"] = format_duration(MAX_DURATION)  # a huge duration is a known gap (see UNBOUNDED)
    return data


def mutate(draw: st.DrawFn, data: dict, kind: str) -> None:
    """Change `data` in place the `kind` way, at a path drawn among those it applies to."""
    every = list(paths(data))
    if kind in ("negative", "zero", "huge", "float", "string"):
        candidates = [(p, v) for p, v in every if (is_number(v) or is_duration(v))
                      and not (kind == "huge" and p[-1] in UNBOUNDED)]
    elif kind == "unknown":
        candidates = [((*p, "bogus_key"), v) for p, v in [((), data), *every] if isinstance(v, dict)]
    elif kind == "backwards":
        candidates = [(p, v) for p, v in every if isinstance(v, dict) and {"start", "end"} <= v.keys()]
    else:
        candidates = every
    if not candidates:
        return
    path, value = draw(st.sampled_from(candidates))
    holder = parent(data, path)
    if kind == "drop":
        del holder[path[-1]]
    elif kind == "unknown":
        holder[path[-1]] = 1
    elif kind == "backwards":
        value["start"], value["end"] = value["end"], value["start"]
    elif kind == "swap":
        other = draw(st.sampled_from([v for v in OTHER_TYPES if type(v) is not type(value)]))
        holder[path[-1]] = copy.deepcopy(other)  # later mutations may change it in place
    else:
        holder[path[-1]] = numeric(kind, value)


@contextlib.contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Raise TimeoutError in the block after `seconds` of wall-clock time (where there are alarms)."""
    def expire(_signum: int, _frame: Any) -> None:
        raise TimeoutError(f"spiralsim run took over {seconds} s")

    if not hasattr(signal, "SIGALRM"):
        yield
        return
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def run_cli(text: str, folder: Path) -> tuple[int, str, Path]:
    """`spiralsim run` on the scenario text, in `folder`: status, stderr, run folder."""
    (folder / "fuzzed.toml").write_text(text, encoding="utf-8")
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err), time_limit(TIME_LIMIT):
        status = main(["run", str(folder / "fuzzed.toml"), "--out", str(folder / "run"), "--quiet"])
    return status, err.getvalue(), folder / "run"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_any_scenario_exits_0_or_2_and_loses_no_request(data):
    with tempfile.TemporaryDirectory(prefix="spiralsim-fuzz-") as tmp:
        status, err, run = run_cli(tomli_w.dumps(data), Path(tmp))
        assert status in (EXIT_OK, EXIT_BAD_INPUT), err
        assert "Traceback" not in err
        if status == EXIT_BAD_INPUT:
            lines = err.splitlines()
            assert lines and all(line.startswith("spiralsim: error: ") for line in lines), err
            return
        summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    for name, service in summary["services"].items():
        settled = service["successes"] + service["failures_total"] + service["in_flight"]
        assert service["requests"] == settled, f"{name}: {service['requests']} requests, {settled} accounted for"
