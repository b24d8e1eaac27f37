"""What a connect costs the database (model/postmaster.py): the postmaster's FIFO queue, the backend's
CPU on the cores, refusals before and after authentication, and a crash loop's bill."""
from __future__ import annotations

from pathlib import Path

import pytest
import simpy

from spiralsim.metrics import Recorder
from spiralsim.model.connection import Connection
from spiralsim.model.database import FULL_TEXT, RESERVED_TEXT, Database
from spiralsim.model.postmaster import Postmaster
from spiralsim.model.world import World
from spiralsim.scenario import DatabaseConfig, load_scenario

ROOT = Path(__file__).resolve().parent.parent


def test_the_postmaster_accepts_one_connect_at_a_time_in_arrival_order():
    pm = Postmaster(1000.0)  # 1 ms each
    assert [pm.accept(t) for t in (0.0, 0.0, 0.0005, 0.010)] == pytest.approx([0.001, 0.002, 0.003, 0.011])
    assert Postmaster(0.0).accept(0.5) == 0.5  # accept_rate 0: no limit


class Harness:
    """A database with one core and round costs; connects as a pool makes them (slot, then delay)."""

    def __init__(self, **db: object):
        self.env = simpy.Environment()
        self.rec = Recorder(10.0, 1.0, ["api"], 100)
        config = {"cores": 1, "contention": False, "accept_rate": 1000.0, "connect_cpu": 0.002,
                  "refused_connect_cpu": 0.0005, "connect_time": 0.030, **db}
        self.db = Database(self.env, DatabaseConfig(**config), self.rec)
        self.series = self.rec.services["api"]

    def connect(self) -> tuple[tuple[str, str] | None, float]:
        refusal = self.db.try_take_slot(self.series)
        return refusal, self.db.connect_delay()


def test_a_connect_waits_for_the_postmaster_then_takes_the_cores_then_the_network():
    h = Harness()
    # Two connects at 0: accepted at 1 ms and 2 ms; each backend's 2 ms of CPU is estimated at the
    # cores' share now (idle: full speed); connect_time (network, TLS) comes on top.
    assert h.connect() == (None, pytest.approx(0.001 + 0.002 + 0.030))
    assert h.connect() == (None, pytest.approx(0.002 + 0.002 + 0.030))
    h.env.run(until=0.0015)
    assert h.db.cpu.n == 1  # the first backend is on the core, the second still in the postmaster's queue
    h.env.run(until=1.0)
    assert h.db.cpu.n == 0
    assert h.rec.db.connect_cpu[0] == pytest.approx(0.004)  # 4 ms on one core, in the bucket they started
    assert h.rec.db.busy_cores.area[0] == pytest.approx(0.004)  # 1 to 5 ms: the core busy with backends


def test_a_backend_start_slows_the_statements_sharing_the_core():
    h = Harness(accept_rate=0.0)
    h.connect()  # its 2 ms backend start joins the core at once
    ended = []
    conn = Connection(h.series, lambda c, t: None)
    h.db.execute(conn, 0.001, 0.0, lambda arg, err: ended.append(h.env.now), None)
    h.env.run(until=1.0)
    assert ended == [pytest.approx(0.002)]  # 1 ms of CPU at half the core (processor sharing)


def test_a_refusal_after_authentication_costs_it_all_before_only_the_fork():
    # max_connections 3, 1 reserved: apps may hold 2. The third connect is refused for the reserved
    # slots, which PostgreSQL checks after authenticating (postinit.c): the full connect_cpu. With no
    # slot at all ("sorry, too many clients already", no PGPROC) only the fork and backend start.
    h = Harness(max_connections=3, superuser_reserved_connections=1)
    h.connect(), h.connect()
    refusal, delay = h.connect()
    assert refusal[1] == RESERVED_TEXT and delay == pytest.approx(0.003 + 0.002 + 0.030)
    h2 = Harness(max_connections=1, superuser_reserved_connections=0)
    h2.connect()
    refusal, delay = h2.connect()
    assert refusal[1] == FULL_TEXT and delay == pytest.approx(0.002 + 0.0005 + 0.030)
    for h_ in (h, h2):
        h_.env.run(until=1.0)
    assert h.rec.db.refused_connect_cpu[0] == pytest.approx(0.002)
    assert h2.rec.db.refused_connect_cpu[0] == pytest.approx(0.0005)
    assert h2.rec.db.connect_cpu[0] == pytest.approx(0.002)


def test_without_cost_a_connect_is_connect_time_as_before():
    h = Harness(accept_rate=0.0, connect_cpu=0.0, refused_connect_cpu=0.0)
    assert [h.connect()[1] for _ in range(3)] == [0.030] * 3
    h.db.unreachable_until = 0.5  # a network_blip: the wait for the network, then connect_time
    assert h.connect()[1] == 0.5 + 0.030


def crash_loop_cpu(*sets: str) -> tuple[float, float]:
    """db_restart.toml (a failover at 3:00 for 30 s, pods crash-looping with a 10-connection
    warm-up) to 4:30: the database's CPU over 3:00 to 4:30 (core-seconds) and what connects cost."""
    s = load_scenario(ROOT / "scenarios" / "db_restart.toml", ["duration=4m30s", *sets])
    rec = World(s).run()
    cores = s.database.cores
    window = slice(180, 270)
    busy = float(rec.db["busy_cores_area"][window].sum()) * cores
    connects = float((rec.db["connect_cpu"][window] + rec.db["refused_connect_cpu"][window]).sum()) * cores
    return busy, connects


def test_a_costlier_connect_costs_the_database_more_during_a_crash_loop():
    # Deterministic (one seed, same traffic): only the connects' cost differs between the runs.
    base_busy, base_connects = crash_loop_cpu()
    busy, connects = crash_loop_cpu("database.connect_cpu=34ms", "database.refused_connect_cpu=2ms")
    assert base_connects > 0
    assert connects > 5 * base_connects
    assert busy - base_busy == pytest.approx(connects - base_connects, rel=0.05)  # all of it on the cores
    free_busy, free_connects = crash_loop_cpu("database.connect_cpu=0", "database.refused_connect_cpu=0")
    assert free_connects == 0 and free_busy < base_busy
