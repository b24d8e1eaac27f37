"""The sweep's parallel speed-up and the Dask path's overhead.

    python benchmarks/bench_sweep.py [--repeat N]

1. Speed-up: `sweep()` on a grid of 8 runs of scenarios/retry_storm.toml shortened
   to 60 s (its incident moved to 0:20-0:30; grid services.api.pool.max = 8, 10,
   12, 14 x services.api.client.max_attempts = 1, 3; one seed, not paired), on a
   local process pool of 1 and of 2 workers: wall seconds (best of N) and the ratio.
2. Dask overhead: the same grid on a `distributed.LocalCluster` (2 worker processes,
   1 thread each) through `client.get_executor()`, against 2 local processes:
   (Dask wall - local wall) / runs. And the same on 40 tiny runs (the textbook
   M/M/1 for 10 simulated seconds, a few milliseconds each), where the per-run
   cost of the executor is nearly all there is. The cluster's start-up is reported
   on its own, not counted.

Wall seconds of the `sweep()` call, imports and the scenario load excluded; no
out folder (no files, no map). Run from the repository root (or anywhere: the
root is put on sys.path).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from spiralsim.experiments.sweep import sweep  # noqa: E402
from spiralsim.scenario import load_scenario, scenario_from_toml  # noqa: E402
from spiralsim.scenario.textbook import queue_toml  # noqa: E402

SHORT = ["duration=60s", "incidents.0.start=20s", "incidents.0.end=30s"]
GRID = {"services.api.pool.max": [8, 10, 12, 14], "services.api.client.max_attempts": [1, 3]}
TINY_GRID = {"services.api.traffic.rate": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]}
TINY_SEEDS = 5


def best(repeat: int, run) -> float:
    """The least wall time of `repeat` calls of run()."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def speedup(repeat: int) -> tuple[float, float]:
    scenario = load_scenario(ROOT / "scenarios" / "retry_storm.toml", overrides=SHORT)
    one = best(repeat, lambda: sweep(scenario, GRID, workers=1, paired_trigger=False))
    two = best(repeat, lambda: sweep(scenario, GRID, workers=2, paired_trigger=False))
    runs = len(sweep(scenario, GRID, workers=2, paired_trigger=False))
    print(f"retry_storm 60 s, {runs} runs: 1 worker {one:.2f} s, 2 workers {two:.2f} s, speed-up {one / two:.2f}x")
    return one, two


def dask_overhead(repeat: int) -> None:
    import distributed

    scenario = load_scenario(ROOT / "scenarios" / "retry_storm.toml", overrides=SHORT)
    tiny = scenario_from_toml(queue_toml(c=1, lam=5.0, mu=10.0, duration=10.0, seed=1))
    cases = [("retry_storm 60 s", scenario, GRID, 1), ("textbook M/M/1 10 s", tiny, TINY_GRID, TINY_SEEDS)]
    started = time.perf_counter()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        print(f"LocalCluster (2 processes) start-up {time.perf_counter() - started:.2f} s (not counted)")
        executor = client.get_executor(pure=False)  # repeats must run again, not hit a cached key
        for label, scen, grid, seeds in cases:
            runs = len(sweep(scen, grid, seeds=seeds, workers=2, paired_trigger=False))
            local = best(repeat, lambda: sweep(scen, grid, seeds=seeds, workers=2, paired_trigger=False))
            dask = best(repeat, lambda: sweep(scen, grid, seeds=seeds, executor=executor, paired_trigger=False))
            print(f"{label}, {runs} runs: 2 local processes {local:.2f} s, Dask LocalCluster {dask:.2f} s, "
                  f"ratio {dask / local:.2f}, overhead {(dask - local) / runs * 1000:+.1f} ms per run")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="take the best of N (default 3)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (another busy process skews it)")
    speedup(args.repeat)
    try:
        dask_overhead(args.repeat)
    except ImportError:
        print("Dask overhead: skipped (pip install 'spiralsim[dask]')")


if __name__ == "__main__":
    main()
