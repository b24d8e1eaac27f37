"""PgBouncer: each behaviour on a tiny deterministic case (the exact log of (time, who, what)),
then in the whole model (transaction and session modes, leaks and orphans), then as a
queue in front of its server pool against queueing theory."""
from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np
import simpy
from builders import FREE_CONNECTS, SESSION_SERVICE, SESSIONS, merge, scenario
from shipped import run
from test_theory import assert_close, batched, erlang_c, mean_estimate, mmc_wait, ratio_estimate

from spiralsim.metrics import Recorder
from spiralsim.model.database import Database
from spiralsim.model.pgbouncer import CLIENT_CONNECT_S, PgBouncer
from spiralsim.model.pool import Pool
from spiralsim.model.timer import Timer
from spiralsim.model.world import World
from spiralsim.report.dashboard import dashboard
from spiralsim.scenario import DatabaseConfig, PgBouncerConfig, PoolConfig, scenario_from_dict, scenario_from_toml
from spiralsim.simulate import simulate

SCENARIOS = Path(__file__).parent.parent / "scenarios"


class Harness:
    """One pool connecting through a PgBouncer to a database; clients scripted at fixed times."""

    def __init__(self, db: dict | None = None, pool: dict | None = None, **bouncer):
        self.env = simpy.Environment()
        self.rec = Recorder(1000.0, 1.0, ["api"], 100)
        self.db = Database(self.env, DatabaseConfig(**{**FREE_CONNECTS, **(db or {})}), self.rec)
        self.series = series = self.rec.services["api"]
        self.bouncer = PgBouncer(self.env, PgBouncerConfig(**bouncer), self.db, series, "api")
        self.pool = Pool(self.env, PoolConfig(**{"max": 5, "idle_timeout": 0, **(pool or {})}), self.bouncer,
                         series, series.pod_level("waiting"), series.pod_level("in_use"), "api")
        self.log: list[tuple[float, str, str]] = []
        self.conns: dict[str, object] = {}

    def now(self) -> float:
        return round(self.env.now, 9)

    def connect(self, at: float, who: str) -> None:
        """`who` calls pool.connect() at `at` (a new client connection to PgBouncer)."""
        def answered(_arg, conn, err):
            self.log.append((self.now(), who, err or "connected"))
            if conn is not None:
                self.conns[who] = conn
        Timer(self.env, at, lambda _t: self.pool.acquire(answered, who))

    def query(self, at: float, who: str, hold: float = 1.0, tx: bool = False, commit: bool = True) -> None:
        """`who`'s client sends a statement at `at` (BEGIN first if `tx`): PgBouncer links it to a
        server; `hold` s later the statement (and with `commit` the transaction) is over."""
        def linked(_arg, err):
            self.log.append((self.now(), who, err or "linked"))
            conn = self.conns[who]
            if err is not None:
                self.pool.release(conn, True)
                return
            if tx:
                self.db.sessions.begin(conn.server, self.series)
            Timer(self.env, hold, lambda _t: over(conn))

        def over(conn):
            if tx and commit:
                self.db.sessions.commit(conn.server)
            self.log.append((self.now(), who, "commit" if tx and commit else "done"))
            self.bouncer.ready(conn)
        def ask(_t):
            conn = self.conns[who]
            if conn.server is None:  # (the handler's hook: only a client without a server asks)
                self.bouncer.assign(conn, linked, who)
            else:
                linked(who, None)
        Timer(self.env, at, ask)

    def close(self, at: float, who: str) -> None:
        Timer(self.env, at, lambda _t: self.pool.release(self.conns[who], True))

    def run(self, until: float = 100.0) -> list[tuple[float, str, str]]:
        self.env.run(until=until)
        return self.log


# ---------------------------------------------------------------- clients and servers


def test_clients_connect_from_memory_and_above_max_client_conn_are_refused():
    h = Harness(max_client_conn=2)
    for who in "ABC":
        h.connect(0.0, who)
    assert h.run() == [
        (CLIENT_CONNECT_S, "A", "connected"),  # no backend fork: 1 ms, no database slot
        (CLIENT_CONNECT_S, "B", "connected"),
        (CLIENT_CONNECT_S, "C", "pgbouncer_refused"),  # no more connections allowed (max_client_conn)
    ]
    assert h.db.held == 0 and h.bouncer.servers == 0  # servers open lazily, at the first query
    assert h.rec.services["api"].refused_connects[0] == 1 and h.rec.db.refused[0] == 0


def test_servers_open_lazily_one_login_at_a_time_and_are_the_only_database_connections():
    h = Harness(pool_mode="transaction", default_pool_size=2)
    for who in "ABC":
        h.connect(0.0, who)
        h.query(0.01, who, hold=1.0)
    assert h.run() == [
        (0.001, "A", "connected"), (0.001, "B", "connected"), (0.001, "C", "connected"),
        (0.04, "A", "linked"),   # the first login: connect_time 30 ms
        (0.07, "B", "linked"),   # the second waits for it (launch_new_connection: one at a time)
        (1.04, "A", "done"),
        (1.04, "C", "linked"),   # default_pool_size 2: C waited for A's server
        (1.07, "B", "done"),
        (2.04, "C", "done"),
    ]
    assert h.db.held == 2 and h.pool.total == 3  # three clients, two database connections
    assert h.bouncer.server_slots() == 2 and len(h.bouncer.idle) == 2


def test_a_queued_client_is_closed_after_query_wait_timeout():
    h = Harness(pool_mode="transaction", default_pool_size=1, query_wait_timeout=2.0)
    h.connect(0.0, "A")
    h.connect(0.0, "B")
    h.query(0.01, "A", hold=5.0)
    h.query(0.02, "B")
    assert h.run() == [
        (0.001, "A", "connected"), (0.001, "B", "connected"),
        (0.04, "A", "linked"),
        (2.02, "B", "query_wait_timeout"),  # PgBouncer disconnects it: the pool closes it
        (5.04, "A", "done"),
    ]
    assert h.pool.total == 1 and h.bouncer.clients == 1
    cols = h.rec.finalize(100.0).services["api"].cols
    assert cols["cl_waiting_peak"].max() == 2  # A waited for the login, 0.01 .. 0.04; B from 0.02
    assert math.isclose(cols["cl_waiting_area"].sum(), 0.03 + 2.0, abs_tol=1e-9)


def test_a_failed_server_login_refuses_new_clients_until_server_login_retry_has_passed():
    # 10 slots, 3 reserved, 7 held by others: the database refuses PgBouncer's first login.
    h = Harness(db={"max_connections": 10, "other_connections": 7})
    h.connect(0.0, "A")
    h.connect(0.0, "E")
    h.query(0.01, "A")                    # waits in the queue; its login is refused at 0.04
    h.connect(1.0, "B")                   # a new client: refused at once
    h.query(2.0, "E")                     # a query finding no server: refused, its client closed
    Timer(h.env, 5.0, lambda _t: setattr(h.db, "other", 0))  # the database has room again
    h.connect(10.0, "C")                  # still refused: no login retried within 15 s
    h.connect(16.0, "D")
    assert h.run() == [
        (0.001, "A", "connected"), (0.001, "E", "connected"),
        (1.001, "B", "pgbouncer_refused"),
        (2.0, "E", "pgbouncer_refused"),
        (10.001, "C", "pgbouncer_refused"),
        (15.04, "A", "linked"),  # server_login_retry 15 s after the failed login's launch, then 30 ms
        (16.001, "D", "connected"),
        (16.04, "A", "done"),
    ]
    assert h.rec.db.refused[0] == 1 and h.db.held == 1


def test_with_nobody_waiting_a_refused_client_makes_pgbouncer_try_a_login_again():
    h = Harness(db={"max_connections": 10, "other_connections": 7}, query_wait_timeout=1.0)
    h.connect(0.0, "A")
    h.query(0.01, "A")  # its login is refused at 0.04, and it gives up at 1.01: nobody waits
    Timer(h.env, 5.0, lambda _t: setattr(h.db, "other", 0))
    h.connect(20.0, "B")  # refused, but past server_login_retry it launches a login (20.0 .. 20.03)
    h.connect(21.0, "C")
    assert h.run() == [
        (0.001, "A", "connected"),
        (1.01, "A", "query_wait_timeout"),
        (20.001, "B", "pgbouncer_refused"),
        (21.001, "C", "connected"),
    ]
    assert h.db.held == 1 and len(h.bouncer.idle) == 1


def test_session_mode_keeps_the_server_until_the_client_closes():
    h = Harness(pool_mode="session", default_pool_size=1)
    h.connect(0.0, "A")
    h.connect(0.0, "B")
    h.query(0.01, "A", hold=1.0, tx=True)
    h.query(0.02, "B", hold=1.0)
    h.query(2.0, "A", hold=1.0)  # already linked: no wait
    h.close(5.0, "A")           # only now does B get the server
    assert h.run() == [
        (0.001, "A", "connected"), (0.001, "B", "connected"),
        (0.04, "A", "linked"), (1.04, "A", "commit"),
        (2.0, "A", "linked"), (3.0, "A", "done"),
        (5.0, "B", "linked"), (6.0, "B", "done"),
    ]


def test_transaction_mode_gives_the_server_back_at_commit_not_at_statement_ends_inside():
    h = Harness(pool_mode="transaction", default_pool_size=1)
    h.connect(0.0, "A")
    h.connect(0.0, "B")
    h.query(0.01, "A", hold=1.0, tx=True, commit=False)  # a statement inside an open transaction
    h.query(0.02, "B", hold=1.0)
    h.close(3.0, "A")  # the client goes with its transaction open: PgBouncer closes that server too
    assert h.run() == [
        (0.001, "A", "connected"), (0.001, "B", "connected"),
        (0.04, "A", "linked"), (1.04, "A", "done"),  # no COMMIT: A keeps its server, B waits
        (3.03, "B", "linked"),  # a new login, 30 ms
        (4.03, "B", "done"),
    ]
    assert h.bouncer.servers == 1 and h.db.held == 1 and h.rec.db.idle_in_transaction.value == 0


# ---------------------------------------------------------------- in the model


def pgb_service(mode: str = "transaction", *, rate: int = 8, last: str = "0.3s", endpoint: dict | None = None,
                **bouncer) -> dict:
    """SESSION_SERVICE behind PgBouncer (`mode`, `bouncer` keys): requests at 0.125 s and 0.25 s (`last`
    0.3 s), a transaction endpoint of one 200 ms statement unless `endpoint` changes it."""
    ep = {"kind": "transaction", "statement_wait": "200ms", **(endpoint or {})}
    return merge(SESSION_SERVICE, {
        "traffic": {"rate": rate, "phases": [{"start": last, "end": "10h", "rate": 0}]},
        "endpoints": {"e": ep},
        "pgbouncer": {"pool_mode": mode, "default_pool_size": 1, **bouncer},
    })


def world_of(*sets: str, **service) -> World:
    world = World(scenario(SESSIONS, *sets, services={"api": pgb_service(**service)}))
    world.run()
    return world


def cols(world: World) -> dict[str, np.ndarray]:
    return world.recorder.finalize(world.scenario.duration).services["api"].cols


def failures(world: World) -> dict[str, int]:
    return {k[len("failures_"):]: int(v.sum()) for k, v in cols(world).items() if k.startswith("failures_") and v.sum()}


def test_transaction_mode_shares_one_server_between_two_clients():
    world = world_of()
    c = cols(world)
    # 0.125: client 1 (1 ms), login (30 ms), 200 ms: COMMIT at 0.356 hands the server to client 2,
    # queued since 0.251, done at 0.556. Latencies 0.231 s and 0.306 s.
    assert c["successes"].sum() == 2
    assert math.isclose(c["latency_sum"].sum(), 0.231 + 0.306, abs_tol=1e-9)
    assert world.database.held == 1 and world.services["api"].pods[0].pool.total == 2
    # waiting in PgBouncer: client 1 for the login (0.126 .. 0.156), client 2 for the COMMIT (0.251 .. 0.356)
    assert math.isclose(c["cl_waiting_area"].sum(), 0.03 + 0.105, abs_tol=1e-9)


def test_session_mode_holds_the_server_for_the_client_connections_life():
    world = world_of(mode="session", query_wait_timeout="2s")
    # client 1 keeps its server after COMMIT (idle in the pod's pool): client 2 waits 2 s, then is closed
    assert failures(world) == {"query_wait_timeout": 1}
    assert cols(world)["successes"].sum() == 1
    assert world.services["api"].bouncer.sv_active.value == 1  # linked to client 1, idle in the pool


def test_an_orphaned_transaction_holds_its_server_until_the_server_ends_it():
    world = world_of(endpoint={"orphan_rate": 1.0}, query_wait_timeout="2s")
    assert failures(world) == {"query_wait_timeout": 1}  # client 2 never got the server
    assert world.recorder.db.idle_in_transaction.value == 1 and world.database.held == 1
    # idle_in_transaction_session_timeout ends it at 1.356: PgBouncer closes client 1 (idle in the pod's
    # pool: pg-pool removes it) and opens a server for client 2 (30 ms): done at 1.586
    world = world_of("database.idle_in_transaction_session_timeout=1s", endpoint={"orphan_rate": 1.0},
                     query_wait_timeout="2s")
    c = cols(world)
    assert not failures(world) and c["successes"].sum() == 2
    assert math.isclose(c["latency_sum"].sum(), 0.231 + (1.586 - 0.25), abs_tol=1e-9)
    assert c["sessions_killed"].sum() == 2  # client 2's orphan too, at 2.586
    assert world.database.held == 0 and world.recorder.db.idle_in_transaction.value == 0


def test_a_leaked_client_holds_its_server():
    world = world_of(endpoint={"error_rate": 1.0, "leak_on_error": True}, query_wait_timeout="2s")
    assert failures(world) == {"statement_error": 1, "query_wait_timeout": 1}
    # client 1 leaked with its server; client 2's error (at BEGIN) flew past release() too: leaked, dead
    series = world.recorder.services["api"]
    assert series.pool_leaked.value == 2 and series.pool_dead.value == 1
    assert world.services["api"].bouncer.sv_active.value == 1 and world.database.held == 1


def test_only_server_connections_count_against_max_connections():
    # 4 pods x 10 warm clients through PgBouncer against max_connections = 10 (7 usable):
    # without PgBouncer the warm-up alone would be refused.
    service = merge(pgb_service(rate=200, last="10s", endpoint={"kind": "query", "statement_wait": "20ms"},
                                default_pool_size=5),
                    {"pod": {"replicas": 4, "warm_connections": 10}, "pool": {"max": 10}})
    world = World(scenario(SESSIONS, "database.max_connections=10", services={"api": service}))
    world.run()
    rec = world.recorder.finalize(world.scenario.duration)
    assert rec.db["refused"].sum() == 0 and not failures(world)
    assert rec.db["connections_peak"].max() == 5
    assert rec.services["api"].cols["pool_total_peak"].max() == 40


# ---------------------------------------------------------------- theory


PGB_QUEUE = """
name = "pgbouncer_queue"
duration = {duration}
seed = {seed}
bucket = 10

[database]
max_connections = {max_connections}

[services.api.traffic]
rate = {lam}

[services.api.endpoints.q]
kind = "query"
statement_cpu = 0
statement_wait = {wait}

[services.api.client]
timeout = 0

[services.api.balancer]
upstream_timeout = 0

[services.api.pod]
cpu_per_request = 0
warm_connections = 80

[services.api.pool]
max = 80
idle_timeout = 0

[services.api.pgbouncer]
pool_mode = "transaction"
default_pool_size = {c}
query_wait_timeout = 0
"""


def test_transaction_pooling_is_an_mmc_queue_in_front_of_the_server_pool():
    """Poisson arrivals (lam = 4/s), exponential statements of mean 1/mu = 1 s, a pod pool of
    80 warm clients (never the bottleneck: P(more than 80 in system) is negligible) and
    default_pool_size c = 5: PgBouncer's queue is M/M/5 at rho = 0.8. Time-average
    cl_waiting = Lq = lam C(c, a) / (c mu - lam) (Erlang C), and mean latency = Wq + 1/mu;
    each within 4 batch-means standard errors (25 batches after 200 s of warm-up, the
    server logins included; see test_theory.py), seed fixed. Theory: Lq 2.216, W 1.554 s;
    the run (80,000 s, ~320,000 requests): Lq 2.200 (4 SE = 0.222), W 1.553 s (4 SE = 0.059 s)."""
    c, lam, mu = 5, 4.0, 1.0
    text = PGB_QUEUE.format(duration=80_200.0, seed=3, max_connections=c + 10, lam=lam, wait=1.0 / mu, c=c)
    rec = World(scenario_from_toml(text)).run()
    cl = rec.services["api"].cols
    warm = 20
    assert cl["arrivals"].sum() == cl["completions"].sum() + rec.services["api"].open_requests
    assert cl["pool_waiting_peak"].max() == 0 and cl["sv_active_peak"].max() == c
    lq, se = mean_estimate(batched(cl["cl_waiting_area"], warm) / batched(np.full(len(cl["arrivals"]), 10.0), warm))
    assert_close(lq, se, lam * mmc_wait(c, lam, mu), f"PgBouncer M/M/{c} rho=0.8 Lq (cl_waiting)", power=0.15)
    w, se = ratio_estimate(cl["latency_sum"], cl["completions"], warm)
    assert_close(w, se, mmc_wait(c, lam, mu) + 1.0 / mu, f"PgBouncer M/M/{c} rho=0.8 W (s)")
    assert erlang_c(c, lam / mu) > 0.5  # most requests do wait: the test is about the queue


# ---------------------------------------------------------------- the shipped scenario


def test_pgbouncer_scenario_scales_to_12_pods_without_a_refused_connect():
    """push_spike's push through PgBouncer: the HPA reaches 12 pods, the database refuses nothing and
    holds PgBouncer's 30 server connections beside `reports`' 50, and no pod crashes."""
    s = run(SCENARIOS / "pgbouncer.toml").summary
    api = s["services"]["api"]
    assert api["pods_max"] == 12 and api["crashes"] == 0
    assert s["database"]["refused_connects"] == 0 and s["database"]["peak_connections"] == 80
    assert api["peak_db_connections"] == 30
    data = tomllib.loads((SCENARIOS / "pgbouncer.toml").read_text(encoding="utf-8"))
    del data["services"]["api"]["pgbouncer"]  # the same pods, straight to PostgreSQL
    direct = simulate(scenario_from_dict(data)).summary
    assert direct["database"]["refused_connects"] > 0 and direct["services"]["api"]["crashes"] > 0


def test_the_dashboard_has_a_pgbouncer_panel_only_when_a_service_has_pgbouncer():
    fig = dashboard(run(SCENARIOS / "pgbouncer.toml"))
    panel = next(ax for ax in fig.axes if ax.get_label() == "pgbouncer")
    labels = [t.get_text() for t in panel.get_legend().get_texts()]
    assert labels == ["api " + g for g in ("cl_active", "cl_waiting (mean)", "cl_waiting (peak)", "sv_active",
                                           "sv_idle", "default_pool_size 30")]  # (two services: named)
    fig = dashboard(run(SCENARIOS / "push_spike.toml"))
    assert "pgbouncer" not in [ax.get_label() for ax in fig.axes]
    note = fig.subfigs[1]._supxlabel  # the note of panels left out, if any
    assert note is None or "pgbouncer" not in note.get_text()  # not "left out": there is none
