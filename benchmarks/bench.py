"""spiralsim's speed and memory: shipped scenarios, and the pool against plain SimPy.

    python benchmarks/bench.py [--quick] [--profile] [--tracemalloc]

For every `scenarios/*.toml`, a fresh subprocess loads and runs it and reports
user requests (arrivals) simulated per wall-clock second, its peak resident
memory (`ru_maxrss`, and its growth over the process after imports and loading)
and, with `--tracemalloc` (a second, traced run: slower), the peak of Python
allocations. Then an M/M/10 pool workload (lambda = 800/s, mu = 100/s, c = 10:
rho 0.8) runs through spiralsim (`World(...).run()`) beside a minimal plain-SimPy
process-per-request model of the same queue with the same number of requests;
the ratio spiralsim / plain should stay >= 0.5 (spiralsim models far more per
request and still schedules callbacks, not processes). Last, the request
path's design choice alone: the same minimal M/M/10 written as a SimPy process per
request and as callbacks on timers (as spiralsim's request path is), with the
SimPy events each schedules. `--profile` runs the spiralsim M/M/10 workload under
cProfile and prints the top 25 by tottime.
Run from the repository root (or anywhere: the root is put on sys.path).
"""
from __future__ import annotations

import argparse
import cProfile
import glob
import json
import os
import pstats
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MMC_LAMBDA = 800.0  # arrivals per second
MMC_MU = 100.0  # services per second per connection
MMC_C = 10
TARGET_RATIO = 0.5


def maxrss_mb() -> float:
    """This process's peak resident set (MB; Linux reports kB, macOS bytes)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


# --- one scenario file, in a child process -------------------------------------
def child(path: str, traced: bool) -> dict:
    """Load and run one scenario; what the parent prints, as a dict."""
    from spiralsim.model.world import World
    from spiralsim.scenario import load_scenario

    scenario = load_scenario(path)
    rss_before = maxrss_mb()
    t0 = time.perf_counter()
    rec = World(scenario).run()
    wall = time.perf_counter() - t0
    out = {
        "name": scenario.name,
        "sim_s": scenario.duration,
        "requests": int(sum(s.cols["arrivals"].sum() for s in rec.services.values())),
        "attempts": int(sum(s.cols["attempts"].sum() for s in rec.services.values())),
        "wall_s": wall,
        "maxrss_mb": maxrss_mb(),
        "rss_growth_mb": maxrss_mb() - rss_before,
    }
    if traced:
        import tracemalloc

        del rec
        tracemalloc.start()
        World(load_scenario(path)).run()
        out["tracemalloc_peak_mb"] = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    return out


def run_child(path: str, traced: bool) -> dict:
    """Run `child(path)` in a fresh interpreter so that ru_maxrss is this scenario's own."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", path] + (["--tracemalloc"] if traced else [])
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        return {"name": Path(path).stem, "error": last}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- M/M/10: spiralsim beside plain SimPy ---------------------------------------
def mmc_toml(duration: float, seed: int = 1) -> str:
    """The pool as an M/M/c queue: no CPU anywhere, no timeouts, c warm connections."""
    from spiralsim.scenario.textbook import queue_toml

    return queue_toml(MMC_C, MMC_LAMBDA, MMC_MU, duration, seed)


def spiralsim_mmc(duration: float) -> tuple[int, float]:
    """(requests, wall seconds) of the M/M/10 workload through spiralsim."""
    from spiralsim.model.world import World
    from spiralsim.scenario import scenario_from_toml

    world = World(scenario_from_toml(mmc_toml(duration)))
    t0 = time.perf_counter()
    rec = world.run()
    wall = time.perf_counter() - t0
    return int(rec.services["api"].cols["arrivals"].sum()), wall


def mmc_draws(requests: int, seed: int = 1) -> tuple[list[float], list[float]]:
    """Inter-arrival gaps and service times (seconds) of `requests` M/M/10 customers."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.exponential(1.0 / MMC_LAMBDA, requests).tolist(), rng.exponential(1.0 / MMC_MU, requests).tolist()


def plain_mmc(requests: int, seed: int = 1) -> float:
    """Wall seconds of a minimal SimPy M/M/10: a process per request on a Resource."""
    return plain_mmc_events(requests, seed)[0]


def plain_mmc_events(requests: int, seed: int = 1) -> tuple[float, int]:
    """(wall seconds, SimPy events scheduled) of the minimal M/M/10, one process per request."""
    import simpy

    gaps, service = mmc_draws(requests, seed)
    t0 = time.perf_counter()
    env = simpy.Environment()
    res = simpy.Resource(env, capacity=MMC_C)

    def customer(s: float):
        with res.request() as r:
            yield r
            yield env.timeout(s)

    def arrivals():
        for g, s in zip(gaps, service):
            yield env.timeout(g)
            env.process(customer(s))

    env.process(arrivals())
    env.run()
    return time.perf_counter() - t0, next(env._eid)


def callback_mmc_events(requests: int, seed: int = 1) -> tuple[float, int]:
    """(wall seconds, SimPy events scheduled) of the same minimal M/M/10 written as spiralsim's
    request path is: a chain of callbacks on `Timer` events, a plain deque as the queue."""
    from collections import deque

    import simpy

    from spiralsim.model.timer import Timer

    gaps, service = mmc_draws(requests, seed)
    t0 = time.perf_counter()
    env = simpy.Environment()
    queue: deque[int] = deque()
    free = [MMC_C]

    def done(_timer: Timer) -> None:
        if queue:
            k = queue.popleft()
            Timer(env, service[k], done, k)
        else:
            free[0] += 1

    def arrive(timer: Timer) -> None:
        k = timer.arg
        if free[0]:
            free[0] -= 1
            Timer(env, service[k], done, k)
        else:
            queue.append(k)
        if k + 1 < requests:
            Timer(env, gaps[k + 1], arrive, k + 1)

    Timer(env, gaps[0], arrive, 0)
    env.run()
    return time.perf_counter() - t0, next(env._eid)


def style_rows(requests: int, repeats: int) -> tuple[list[list[str]], float, float]:
    """The request-path design choice on its own: the same minimal M/M/10 as one process per
    request and as callbacks on timers; rows, and the ratios of events and of speed."""
    proc = min((plain_mmc_events(requests) for _ in range(repeats)), key=lambda r: r[0])
    call = min((callback_mmc_events(requests) for _ in range(repeats)), key=lambda r: r[0])
    rows = [[f"M/M/{MMC_C} minimal, {name}", f"{requests:,}", f"{events:,}", f"{events / requests:.1f}",
             f"{wall:.2f}", f"{requests / wall:,.0f}"]
            for name, (wall, events) in (("process per request", proc), ("callbacks on timers", call))]
    return rows, proc[1] / call[1], proc[0] / call[0]


def profile_mmc(duration: float, top: int = 25) -> None:
    """cProfile the spiralsim M/M/10 workload; print the top functions by tottime."""
    from spiralsim.model.world import World
    from spiralsim.scenario import scenario_from_toml

    world = World(scenario_from_toml(mmc_toml(duration)))
    prof = cProfile.Profile()
    prof.enable()
    world.run()
    prof.disable()
    print(f"\ncProfile: spiralsim M/M/{MMC_C}, {duration:g} simulated s, top {top} by tottime")
    pstats.Stats(prof, stream=sys.stdout).strip_dirs().sort_stats("tottime").print_stats(top)


# --- table ------------------------------------------------------------------------
def fmt_row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    print(fmt_row(header, widths))
    print(fmt_row(["-" * w for w in widths], widths))
    for r in rows:
        print(fmt_row(r, widths))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a short M/M/10 run, one repeat")
    ap.add_argument("--profile", action="store_true", help="cProfile the spiralsim M/M/10 workload")
    ap.add_argument("--tracemalloc", action="store_true",
                    help="also a traced run of each scenario for its Python allocation peak (slower)")
    ap.add_argument("--scenarios", default=str(ROOT / "scenarios" / "*.toml"), help="glob of scenario files")
    ap.add_argument("--child", metavar="PATH", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        print(json.dumps(child(args.child, args.tracemalloc)))
        return 0

    mmc_duration = 60.0 if args.quick else 300.0
    repeats = 1 if args.quick else 3
    if args.profile:
        profile_mmc(mmc_duration)
        return 0

    files = sorted(glob.glob(args.scenarios))
    header = ["workload", "sim s", "requests", "attempts", "wall s", "req/s", "maxrss MB", "growth MB"]
    if args.tracemalloc:
        header.append("traced MB")
    rows = []
    if not files:
        print(f"no scenario files match {args.scenarios}")
    for path in files:
        r = run_child(path, args.tracemalloc)
        if "error" in r:
            rows.append([r["name"], "error: " + r["error"]] + [""] * (len(header) - 2))
            continue
        row = [r["name"], f"{r['sim_s']:g}", f"{r['requests']:,}", f"{r['attempts']:,}", f"{r['wall_s']:.2f}",
               f"{r['requests'] / r['wall_s']:,.0f}", f"{r['maxrss_mb']:.0f}", f"{r['rss_growth_mb']:.1f}"]
        if args.tracemalloc:
            row.append(f"{r.get('tracemalloc_peak_mb', float('nan')):.1f}")
        rows.append(row)

    # M/M/10: best of `repeats` for each side, the same requests on both
    spiral_wall, plain_wall, n = float("inf"), float("inf"), 0
    for _ in range(repeats):
        n, wall = spiralsim_mmc(mmc_duration)
        spiral_wall = min(spiral_wall, wall)
        plain_wall = min(plain_wall, plain_mmc(n))
    label = f"M/M/{MMC_C} lam={MMC_LAMBDA:g} mu={MMC_MU:g}"
    blank = [""] * (len(header) - 6)
    rows.append([label + " spiralsim", f"{mmc_duration:g}", f"{n:,}", f"{n:,}", f"{spiral_wall:.2f}",
                 f"{n / spiral_wall:,.0f}"] + blank)
    rows.append([label + " plain SimPy", f"{mmc_duration:g}", f"{n:,}", f"{n:,}", f"{plain_wall:.2f}",
                 f"{n / plain_wall:,.0f}"] + blank)
    print_table(header, rows)
    ratio = plain_wall / spiral_wall
    verdict = "ok" if ratio >= TARGET_RATIO else f"BELOW the {TARGET_RATIO} target"
    print(f"\nspiralsim / plain SimPy requests per second: {ratio:.2f} ({verdict}; best of {repeats})")

    rows, fewer, faster = style_rows(n, repeats)
    print()
    print_table(["why callbacks", "requests", "events", "per request", "wall s", "req/s"], rows)
    print(f"\ncallbacks schedule {fewer:.1f}x fewer SimPy events and run {faster:.1f}x faster "
          f"than a process per request (best of {repeats})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
