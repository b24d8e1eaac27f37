"""Contention past the cores (model/contention.py): the USL on a tiny exact case, the calibration
against facts.md's 4-core pgbench figures, the off switch, and a bigger pool losing throughput."""
from __future__ import annotations

import math

import pytest
import simpy
from builders import TEXTBOOK, scenario

from spiralsim.metrics import Recorder
from spiralsim.model.connection import Connection
from spiralsim.model.contention import capacity, share
from spiralsim.model.cpu_share import CpuShare
from spiralsim.model.database import Database
from spiralsim.model.timer import Timer
from spiralsim.model.world import World
from spiralsim.scenario import DatabaseConfig

#: facts.md §2: pgbench on 4 cores, busy connections -> tps.
PGBENCH_4_CORES = {32: 24_206, 64: 24_553, 90: 21_436}
#: CPU of one pgbench transaction in the mapping below, fitted with kappa (model/contention.py).
PGBENCH_CPU = 0.157e-3


def test_cpu_share_inlines_the_documented_formula():
    cpu = CpuShare(simpy.Environment(), 4, lambda u: None, lambda job: None, 0.01, 2e-4)
    for n in range(1, 300):
        assert math.isclose(cpu.rate(n), share(n, 4, 0.01, 2e-4), rel_tol=1e-12)
    plain = CpuShare(simpy.Environment(), 4, lambda u: None, lambda job: None)
    assert [plain.rate(n) for n in (1, 4, 8)] == [1.0, 1.0, 0.5]  # without contention: min(1, cores / n)


def test_nothing_changes_while_the_statements_fit_on_the_cores():
    assert [capacity(n, 4, 0.1, 0.01) for n in range(1, 5)] == [1.0, 2.0, 3.0, 4.0]
    assert capacity(5, 4, 0.1, 0.01) < 4.0 and capacity(50, 4, 0.1, 0.01) < capacity(5, 4, 0.1, 0.01)


def test_two_statements_on_one_core_lose_what_the_usl_says():
    # One core, sigma 0.25, kappa 0.125: D(1) = 1, D(2) = 1 + 0.25 + 0.25 = 1.5, so two statements
    # in CPU get 1 / 1.5 of the core between them: 1 s of CPU each ends at 2 * 1.5 = 3 s (2 s without).
    for config, end in (({"contention_sigma": 0.25, "contention_kappa": 0.125}, 3.0),
                        ({"contention": False, "contention_sigma": 0.25, "contention_kappa": 0.125}, 2.0)):
        env = simpy.Environment()
        rec = Recorder(10.0, 1.0, ["api"], 100)
        db = Database(env, DatabaseConfig(cores=1, **config), rec)
        log = []
        for who in "AB":
            conn = Connection(rec.services["api"], lambda c, t: None)
            db.execute(conn, 1.0, 0.0, lambda arg, err: log.append((env.now, arg, err)), who)
        env.run(until=10.0)
        assert log == [(end, "A", None), (end, "B", None)]


def closed_loop_tps(clients: int, cpu: float = PGBENCH_CPU, **db: object) -> float:
    """pgbench -c CLIENTS on the model, as close as it allows: each client runs one statement after
    another with no think time (pgbench's closed loop); a transaction is one statement of `cpu`
    seconds of CPU, no wait part, no network (the select-only script's one query; the measured
    latency 1.3 ms x 24,206 tps = 32 clients says the clients never idled)."""
    env = simpy.Environment()
    rec = Recorder(2.0, 1.0, ["pgbench"], clients + 10)
    database = Database(env, DatabaseConfig(cores=4, max_connections=clients + 10, **db), rec)
    done = [0, 0.0]

    def again(conn: Connection, error: str | None) -> None:
        done[0] += 1
        done[1] = env.now
        database.execute(conn, cpu, 0.0, again, conn)

    for _ in range(clients):
        conn = Connection(rec.services["pgbench"], lambda c, t: None)
        Timer(env, 0.0, lambda t: database.execute(t.arg, cpu, 0.0, again, t.arg), conn)
    env.run(until=0.5)
    return done[0] / done[1]  # every round ends all clients at once (deterministic, processor sharing)


@pytest.mark.parametrize("clients", sorted(PGBENCH_4_CORES))
def test_the_defaults_reproduce_the_4_core_pgbench_figures_within_5_percent(clients):
    # Deterministic: the tolerance is the model's fit (3.5 % at most, model/contention.py), not noise.
    tps = closed_loop_tps(clients)
    assert tps == pytest.approx(PGBENCH_4_CORES[clients], rel=0.05)


def test_without_contention_throughput_stays_at_the_cores():
    off = [closed_loop_tps(n, contention=False) for n in (8, 32, 90)]
    assert off == pytest.approx([4 / PGBENCH_CPU] * 3, rel=1e-9)
    on = [closed_loop_tps(n) for n in (8, 32, 64, 90)]
    assert on == sorted(on, reverse=True)  # past the cores, each more client loses throughput


def saturated_goodput(pool_max: int, *sets: str) -> float:
    """Successes of one pod whose pool of `pool_max` serves an open-loop load above the database's
    capacity (4 cores, 10 ms CPU per statement: 400/s) for 20 s after a 2 s warm-up."""
    s = scenario(TEXTBOOK, f"services.api.pool.max={pool_max}", f"services.api.pod.warm_connections={pool_max}",
                 "services.api.endpoints.q.statement_cpu=10ms", "services.api.endpoints.q.statement_wait=0",
                 "services.api.traffic.rate=600",
                 "services.api.traffic.arrivals=poisson", "services.api.traffic.phases=[]", *sets,
                 duration="22s")
    cols = World(s).run().services["api"].cols
    return float(cols["successes"][2:].sum()) / 20.0


def test_a_larger_pool_past_the_cores_gets_less_done():
    # The database is the bottleneck and stays saturated: goodput = capacity(n) / 10 ms with n = pool.max
    # statements in CPU, up to one statement in the bucket edges (deterministic CPU; the Poisson
    # arrivals only keep the queue full). 8 -> 4 D(4)/D(8) = 3.996 cores, 64 -> 3.721 cores (-6.9 %).
    small, large = saturated_goodput(8), saturated_goodput(64)
    assert small == pytest.approx(100 * capacity(8, 4, 0.0, 1.875e-5), rel=0.01)
    assert large == pytest.approx(100 * capacity(64, 4, 0.0, 1.875e-5), rel=0.01)
    assert large < 0.95 * small
    off = [saturated_goodput(n, "database.contention=false") for n in (8, 64)]
    assert off == pytest.approx([400.0, 400.0], rel=0.01)  # without contention a bigger pool only adds latency
