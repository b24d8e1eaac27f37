"""What a long client timeout costs: the M/M/10 workload of issue 11 with a 1 h client timeout.

    python benchmarks/bench_timeouts.py [--root CHECKOUT] [--repeats N]

The textbook pool (1,000 req/s, 5 ms statements, 10 connections: rho 0.5) with
`client.timeout = "1h"` (no attempt ever times out, but each sets a deadline)
runs through spiralsim for 60 s and for 600 s of simulated time, each in a fresh
subprocess: requests per wall-clock second and peak resident memory. Beside it,
the minimal plain-SimPy model of the same queue (a process per request, no
timeouts) on the same requests. Issue 11 asks for spiralsim with the timeout at
least as fast as plain SimPy, and for 10x the simulated time to cost at most
1.5x the peak memory. `--root` measures another checkout (an older commit, for
a before/after in one run).
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LAMBDA, MU, C, TIMEOUT = 1000.0, 200.0, 10, "1h"


def child(root: str, duration: float) -> dict:
    """In a fresh process: run the workload, report requests, wall seconds and peak RSS."""
    sys.path.insert(0, root)
    from spiralsim.model.world import World
    from spiralsim.scenario import scenario_from_toml
    from spiralsim.scenario.textbook import queue_toml

    world = World(scenario_from_toml(queue_toml(C, LAMBDA, MU, duration),
                                     [f'services.api.client.timeout="{TIMEOUT}"']))
    t0 = time.perf_counter()
    rec = world.run()
    wall = time.perf_counter() - t0
    return {"requests": int(rec.services["api"].cols["arrivals"].sum()), "wall_s": wall,
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(root: str, duration: float) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", root, "--duration", str(duration)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def plain(requests: int) -> float:
    """Wall seconds of the minimal plain-SimPy M/M/10 (bench.py's), timeouts off."""
    sys.path.insert(0, str(HERE))
    import bench

    bench.MMC_LAMBDA, bench.MMC_MU = LAMBDA, MU
    return bench.plain_mmc(requests)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=str(HERE.parent), help="the checkout to measure (default: this one)")
    ap.add_argument("--repeats", type=int, default=3, help="best of N for the speed (default 3)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--duration", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.duration)))
        return 0
    runs = {d: [run_child(args.root, d) for _ in range(args.repeats if d == 60.0 else 1)] for d in (60.0, 600.0)}
    short, long = min(runs[60.0], key=lambda r: r["wall_s"]), runs[600.0][0]
    plain_wall = min(plain(short["requests"]) for _ in range(args.repeats))
    print(f"checkout {args.root}: M/M/{C}, {LAMBDA:g} req/s, {1000 / MU:g} ms, client timeout {TIMEOUT}")
    for d, r in ((60.0, short), (600.0, long)):
        print(f"  {d:5g} s simulated: {r['requests']:,} requests, {r['requests'] / r['wall_s']:,.0f} req/s,"
              f" peak {r['maxrss_mb']:.0f} MB")
    print(f"  plain SimPy (no timeouts), same {short['requests']:,} requests: {short['requests'] / plain_wall:,.0f}"
          f" req/s")
    print(f"  spiralsim / plain SimPy speed: {plain_wall / short['wall_s']:.2f} (asked: >= 1; best of {args.repeats})")
    print(f"  peak memory 600 s / 60 s: {long['maxrss_mb'] / short['maxrss_mb']:.2f} (asked: <= 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
