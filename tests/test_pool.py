"""Each pg-pool behaviour on a tiny deterministic case: the exact log of (time, who, what)."""
from __future__ import annotations

import simpy
from builders import FREE_CONNECTS

from spiralsim.metrics import Recorder
from spiralsim.model.database import FULL_TEXT, RESERVED_TEXT, Database
from spiralsim.model.pool import Pool
from spiralsim.model.timer import Timer
from spiralsim.scenario import DatabaseConfig, PoolConfig


class Harness:
    """One pool on one database, callers scripted at fixed times, every answer logged."""

    def __init__(self, db: dict | None = None, **pool):
        self.env = simpy.Environment()
        self.rec = Recorder(1000.0, 1.0, ["api"], 100)
        self.db = Database(self.env, DatabaseConfig(**{**FREE_CONNECTS, **(db or {})}), self.rec)
        series = self.rec.services["api"]
        self.pool = Pool(self.env, PoolConfig(**pool), self.db, series,
                         series.pod_level("waiting"), series.pod_level("in_use"), "api")
        self.log: list[tuple[float, str, str]] = []
        self.conns: dict[str, object] = {}

    def acquire(self, at: float, who: str, hold: float | None = None, error: bool = False) -> None:
        """`who` calls pool.connect() at `at`; holds a connection `hold` seconds, then releases it."""
        def answered(_arg, conn, err):
            self.log.append((round(self.env.now, 9), who, err or "acquired"))
            if conn is not None:
                self.conns[who] = conn
                if hold is not None:
                    Timer(self.env, hold, lambda _t: self.release(who, error))
        Timer(self.env, at, lambda _t: self.pool.acquire(answered, who))

    def release(self, who: str, error: bool = False) -> None:
        self.log.append((round(self.env.now, 9), who, "release" + (" with error" if error else "")))
        self.pool.release(self.conns[who], error)

    def run(self, until: float = 100.0) -> list[tuple[float, str, str]]:
        self.env.run(until=until)
        return self.log


def test_new_connection_costs_connect_time_then_fifo_queue():
    h = Harness(max=1, idle_timeout=0)
    h.acquire(0.0, "A", hold=1.0)
    h.acquire(0.1, "B", hold=1.0)
    h.acquire(0.2, "C", hold=1.0)
    assert h.run() == [
        (0.03, "A", "acquired"),  # connect_time 30 ms
        (1.03, "A", "release"),
        (1.03, "B", "acquired"),  # the head of the queue, no new connect
        (2.03, "B", "release"),
        (2.03, "C", "acquired"),
        (3.03, "C", "release"),
    ]
    assert h.rec.services["api"].connects[0] == 1


def test_a_new_caller_never_overtakes_waiters():
    h = Harness(max=1, idle_timeout=0)
    h.acquire(0.0, "A", hold=1.0)
    h.acquire(0.5, "B", hold=1.0)
    h.acquire(1.03, "C", hold=1.0)  # arrives at the instant A releases
    log = h.run()
    assert [e for e in log if e[2] == "acquired"] == [
        (0.03, "A", "acquired"), (1.03, "B", "acquired"), (2.03, "C", "acquired"),
    ]


def test_idle_connections_are_reused_most_recently_released_first():
    h = Harness(max=3, idle_timeout=0)
    h.acquire(0.0, "A", hold=1.0)
    h.acquire(0.0, "B", hold=2.0)
    h.acquire(0.0, "C", hold=3.0)
    h.acquire(5.0, "D", hold=1.0)
    h.run()
    assert h.conns["D"] is h.conns["C"]  # released last (3.03), handed out first
    assert h.pool.total == 3 and len(h.pool.idle) == 3


def test_queued_caller_times_out_with_pg_pool_message():
    h = Harness(max=1, acquire_timeout=1.0, idle_timeout=0)
    h.acquire(0.0, "A", hold=5.0)
    h.acquire(0.5, "B", hold=1.0)
    h.acquire(0.7, "C", hold=1.0)
    log = h.run()
    assert log == [
        (0.03, "A", "acquired"),
        (1.5, "B", "acquire_timeout"),   # timeout exceeded when trying to connect
        (1.7, "C", "acquire_timeout"),
        (5.03, "A", "release"),
    ]
    assert h.pool.waiting == 0 and len(h.pool.idle) == 1


def test_tie_between_release_and_acquire_timeout_goes_to_the_timeout():
    h = Harness(max=1, acquire_timeout=1.0, idle_timeout=0)
    h.acquire(0.0, "A", hold=0.97)  # releases at exactly 1.0
    h.acquire(0.0, "B", hold=1.0)   # queued at 0.0, times out at exactly 1.0
    assert h.run() == [(0.03, "A", "acquired"), (1.0, "B", "acquire_timeout"), (1.0, "A", "release")]


def test_connect_slower_than_acquire_timeout_is_a_connect_timeout():
    h = Harness(db={"connect_time": 2.0}, max=2, acquire_timeout=1.0, idle_timeout=0)
    h.acquire(0.0, "A", hold=1.0)
    assert h.run() == [(1.0, "A", "connect_timeout")]  # Connection terminated due to connection timeout
    assert h.pool.total == 0 and h.db.held == 0


def test_full_database_refuses_one_connect_per_waiter_with_postgres_texts():
    # 10 slots, 3 reserved, 6 held by others: one usable by the app.
    h = Harness(db={"max_connections": 10, "other_connections": 6}, max=3, idle_timeout=0)
    h.acquire(0.0, "A", hold=10.0)
    h.acquire(0.1, "B")
    h.acquire(0.1, "C")
    h.acquire(0.1, "D")
    assert h.run() == [
        (0.03, "A", "acquired"),
        (0.13, "B", "too_many_clients"),
        (0.13, "C", "too_many_clients"),
        (0.16, "D", "too_many_clients"),  # queued behind a full pool, then its own refused connect
        (10.03, "A", "release"),
    ]
    assert h.rec.db.refused[0] == 3
    first = [e for e in h.rec.events if e.kind == "first_refused_connect"]
    assert len(first) == 1 and first[0].detail.startswith(RESERVED_TEXT)


def test_no_slot_at_all_says_too_many_clients():
    h = Harness(db={"max_connections": 5, "other_connections": 5}, max=1)
    h.acquire(0.0, "A")
    assert h.run() == [(0.03, "A", "too_many_clients")]
    assert h.rec.events[0].detail.startswith(FULL_TEXT)


def test_release_with_error_closes_and_next_caller_pays_a_connect():
    h = Harness(max=1, idle_timeout=0)
    h.acquire(0.0, "A", hold=1.0, error=True)  # pool.query with a failed statement
    h.acquire(0.5, "B", hold=1.0)
    assert h.run() == [
        (0.03, "A", "acquired"),
        (1.03, "A", "release with error"),
        (1.06, "B", "acquired"),  # a fresh connect for the waiter
        (2.06, "B", "release"),
    ]
    assert h.rec.services["api"].closes[1] == 1


def test_idle_timeout_closes_surplus_but_keeps_min():
    h = Harness(max=2, min=1, idle_timeout=10.0)
    h.acquire(0.0, "A", hold=1.0)
    h.acquire(0.0, "B", hold=2.0)
    h.run(11.0)
    assert h.pool.total == 2  # A idle since 1.03, B since 2.03: not yet
    h.run(100.0)
    assert h.pool.total == 1 and len(h.pool.idle) == 1  # A closed at 11.03, min keeps B
    assert h.rec.services["api"].closes[11] == 1 and sum(h.rec.services["api"].closes) == 1


def test_idle_timer_restarts_when_a_connection_is_reused():
    h = Harness(max=1, idle_timeout=10.0)
    h.acquire(0.0, "A", hold=1.0)   # idle from 1.03
    h.acquire(8.0, "B", hold=1.0)   # reused at 8.0, idle again from 9.0
    h.run(18.9)
    assert h.pool.total == 1
    h.run(19.1)
    assert h.pool.total == 0  # closed at 19.0, not 11.03


def test_max_uses_and_max_lifetime_retire_connections():
    h = Harness(max=1, max_uses=2, idle_timeout=0)
    h.acquire(0.0, "A", hold=1.0)
    h.acquire(0.0, "B", hold=1.0)
    h.acquire(0.0, "C", hold=1.0)
    log = h.run()
    assert [e for e in log if e[2] == "acquired"] == [
        (0.03, "A", "acquired"), (1.03, "B", "acquired"), (2.06, "C", "acquired"),
    ]  # closed after its second use; C pays a new connect
    h = Harness(max=1, max_lifetime=5.0, idle_timeout=0)
    h.acquire(0.0, "A", hold=1.0)
    h.acquire(2.0, "B", hold=10.0)
    h.acquire(2.5, "C", hold=1.0)
    log = h.run()
    assert log == [
        (0.03, "A", "acquired"), (1.03, "A", "release"), (2.0, "B", "acquired"),
        (12.0, "B", "release"),  # expired at 5.03 while checked out: closed on release
        (12.03, "C", "acquired"),
        (13.03, "C", "release"),
    ]


def test_caller_that_timed_out_while_its_connection_opened_leaves_it_idle():
    h = Harness(db={"connect_time": 0.5}, max=1, acquire_timeout=1.0, idle_timeout=0)
    h.acquire(0.0, "A", hold=1.0)    # connects 0.5, releases 1.5
    h.acquire(0.6, "B", hold=1.0)    # queued; gets A's connection at 1.5
    log = h.run()
    assert log[:3] == [(0.5, "A", "acquired"), (1.5, "A", "release"), (1.5, "B", "acquired")]
    h = Harness(db={"connect_time": 0.8}, max=1, acquire_timeout=1.0, idle_timeout=0)
    h.acquire(0.0, "A", hold=1.0, error=True)   # 0.8 .. 1.8, closes its connection
    h.acquire(1.0, "B", hold=1.0)               # queued at 1.0; a new connect 1.8 .. 2.6; gives up at 2.0
    log = h.run()
    assert log == [(0.8, "A", "acquired"), (1.8, "A", "release with error"), (2.0, "B", "acquire_timeout")]
    assert h.pool.total == 1 and len(h.pool.idle) == 1  # the late connection went back to the pool


def test_gauges_total_idle_waiting_follow_the_pool():
    h = Harness(max=2, idle_timeout=0)
    h.acquire(0.0, "A", hold=2.0)
    h.acquire(0.0, "B", hold=2.0)
    h.acquire(0.0, "C", hold=1.0)
    h.run(100.0)
    s = h.rec.services["api"]
    # C waited from 0.0 to 2.03: waiting area in bucket 0 is 1 x 1 s, bucket 1 is 1 x 1 s, bucket 2 0.03 s
    assert [round(s.pool_waiting.area[i], 9) for i in range(3)] == [1.0, 1.0, 0.03]
    assert s.pool_waiting.peak[0] == 1 and s.pool_total.peak[0] == 2
