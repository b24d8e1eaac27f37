"""Leaks, orphaned transactions, locks, server-side timeouts, restarts and drops:
each on a tiny deterministic case, exact to the event."""
from __future__ import annotations

import math

from builders import SESSION_SERVICE, SESSIONS, merge, scenario

from spiralsim.model.world import World
from spiralsim.scenario import Scenario
from spiralsim.vocabulary import KIND_INDEX


def service(*, rate: int = 8, last: str = "0.2s", **tables: dict) -> dict:
    """A SESSION_SERVICE with `rate` requests a second until `last`, `tables` merged in."""
    traffic = {"rate": rate, "phases": [{"start": last, "end": "10h", "rate": 0}]}
    return merge(SESSION_SERVICE, {"traffic": traffic, **tables})


def run(s: Scenario) -> World:
    world = World(s)
    world.run()
    return world


def kinds(world: World, *wanted: str) -> list[tuple[float, str, str]]:
    return [(round(e.time, 6), e.kind, e.detail) for e in world.recorder.events if e.kind in wanted]


def total(world: World, column: str, service: str = "api") -> float:
    return float(sum(getattr(world.recorder.services[service], column)))


LEAKY = service(last="1s", endpoints={"e": {"kind": "transaction", "error_rate": 1.0, "leak_on_error": True}},
                pool={"max": 3, "acquire_timeout": "1s"})


def test_a_handler_without_finally_leaks_one_client_per_failed_transaction():
    world = run(scenario(SESSIONS, services={"api": LEAKY}))
    # Arrivals at 0.125 k (k = 1..8). Requests 1-3 each open a connection (30 ms), fail after 10 ms and
    # never release; the rest queue for 1 s and get "timeout exceeded when trying to connect".
    assert kinds(world, "first_leak")[0][0] == 0.165
    assert total(world, "leaked") == 3
    assert total(world, "successes") == 0
    cols = world.recorder.finalize(20.0).services["api"].cols
    assert cols["failures_statement_error"].sum() == 3 and cols["failures_acquire_timeout"].sum() == 5
    pool = world.services["api"].pods[0].pool
    assert pool.total == 3 and not pool.idle
    assert world.database.held == 3
    assert world.recorder.db.idle_in_transaction.value == 3  # idle in transaction (aborted), forever


def test_the_with_transaction_helper_never_leaks():
    helper = merge(LEAKY, {"endpoints": {"e": {"leak_on_error": None}}})  # the default: roll back, release
    world = run(scenario(SESSIONS, services={"api": helper}))
    assert total(world, "leaked") == 0
    pool = world.services["api"].pods[0].pool
    assert pool.total == 1 and len(pool.idle) == 1  # rolled back and released: one connection serves all
    assert world.recorder.db.idle_in_transaction.value == 0


def test_idle_in_transaction_timeout_turns_a_leak_into_a_crash():
    world = run(scenario(SESSIONS, "database.idle_in_transaction_session_timeout=5s", services={"api": LEAKY}))
    # The first leaked session is killed 5 s after it went idle in transaction; the FATAL arrives as an
    # 'error' on a checked-out client with no listener: the node process crashes.
    crashes = kinds(world, "pod_crash")
    assert crashes[0][0] == 5.165
    assert "unhandled 'error' event on a checked-out client" in crashes[0][2]
    assert total(world, "sessions_killed") == 1  # the other two closed with the process
    assert world.database.held == 0


def test_with_a_client_listener_the_pool_fills_with_dead_clients():
    world = run(scenario(SESSIONS, "database.idle_in_transaction_session_timeout=5s",
                         "services.api.pod.crash_on_client_error=false", services={"api": LEAKY}))
    pool = world.services["api"].pods[0].pool
    assert not kinds(world, "pod_crash")
    assert total(world, "sessions_killed") == 3
    assert pool.total == 3 and world.database.held == 0  # the slots are free at the database...
    assert world.recorder.services["api"].pool_dead.value == 3  # ...but pg-pool never takes them back


ORPHAN = service(last="0.7s", endpoints={"e": {"kind": "transaction", "orphan_rate": 1.0}}, pool={"max": 1})


def test_orphaned_transaction_swallows_later_requests_and_loses_their_writes():
    world = run(scenario(SESSIONS, "database.idle_in_transaction_session_timeout=5s",
                         services={"api": ORPHAN}))
    # Five requests at 0.125 .. 0.625 s, all on the pool's one connection: the first releases without
    # COMMIT, the next four BEGIN inside its transaction (PostgreSQL only warns) and leave it open too.
    assert total(world, "successes") == 5
    assert total(world, "orphaned") == 5
    assert total(world, "foreign_statements") == 4
    # Idle in transaction from 0.635 s; killed at 5.635 s; everything inside is rolled back.
    assert world.recorder.services["api"].lost_writes[5] == 5
    assert total(world, "sessions_killed") == 1
    pool_errors = kinds(world, "pool_error")
    assert pool_errors == [(5.635, "pool_error",
                            "api-0: FATAL 25P03 terminating connection due to idle-in-transaction timeout")]
    assert world.services["api"].pods[0].pool.total == 0  # an idle client: removed at once


def test_crash_on_pool_error_crashes_a_pod_without_a_listener():
    world = run(scenario(SESSIONS, "database.idle_in_transaction_session_timeout=5s",
                         "services.api.pod.crash_on_pool_error=true", services={"api": ORPHAN}))
    assert kinds(world, "pod_crash")[0][:2] == (5.635, "pod_crash")


def test_a_statement_waits_for_the_locks_of_an_orphaned_transaction():
    world = run(scenario(
        SESSIONS, "database.idle_in_transaction_session_timeout=5s", "services.writer.traffic.phases.0.start=0.2s",
        services={"writer": ORPHAN,
                  "reader": service(rate=1, last="1.5s", endpoints={"e": {"lock_conflict": 1.0}})}))
    # writer's orphan: idle in transaction from 0.165 s, killed at 5.165 s. reader's one request at
    # 1.0 s connects (30 ms) and its statement waits for the orphan's rows until then, then runs 10 ms.
    r = world.recorder.services["reader"]
    assert sum(r.lock_waits) == 1
    assert math.isclose(sum(r.lock_wait_sum), 5.165 - 1.03, rel_tol=1e-9)
    assert math.isclose(sum(r.latency_sum), 5.175 - 1.0, rel_tol=1e-9)
    assert sum(world.recorder.services["writer"].lost_writes) == 1


def test_statement_timeout_ends_a_lock_wait():
    world = run(scenario(
        SESSIONS, "database.statement_timeout=2s", "services.writer.traffic.phases.0.start=0.2s",
        services={"writer": ORPHAN,
                  "reader": service(rate=1, last="1.5s", endpoints={"e": {"lock_conflict": 1.0}})}))
    r = world.recorder.services["reader"]
    assert sum(r.failures[KIND_INDEX["statement_timeout"]]) == 1
    assert math.isclose(sum(r.lock_wait_sum), 2.0, rel_tol=1e-9)


def test_db_restart_drops_every_connection_and_refuses_connects_while_it_lasts():
    base = service(last="20s", pod={"warm_connections": 3}, pool={"max": 3})
    incident = [{"kind": "db_restart", "start": "10.01s", "end": "10.5s"}]
    world = run(scenario(SESSIONS, services={"api": base}, incidents=incident))
    # With the pool error listener (the default) the pod rides it out: idle connections are
    # removed, the next requests reconnect; those that connect inside the window are refused.
    assert not kinds(world, "pod_crash")
    assert kinds(world, "pool_error")[0][0] == 10.01
    assert total(world, "terminated") == 3
    cols = world.recorder.finalize(20.0).services["api"].cols
    assert cols["failures_connection_terminated"].sum() >= 1
    assert cols["successes"].sum() + cols["failures_connection_terminated"].sum() == 159
    world = run(scenario(SESSIONS, "services.api.pod.crash_on_pool_error=true", services={"api": base},
                         incidents=incident))
    crash = kinds(world, "pod_crash")[0]
    assert crash[0] == 10.01 and "unhandled 'error' event from the pool" in crash[2]


def test_network_blip_is_found_on_use():
    base = service(rate=1, last="20s", pod={"warm_connections": 1}, pool={"max": 1})
    incident = [{"kind": "network_blip", "start": "5.5s", "end": "6s"}]
    world = run(scenario(SESSIONS, services={"api": base}, incidents=incident))
    cols = world.recorder.finalize(20.0).services["api"].cols
    # Arrivals at 1, 2, ... s. The 6 s request finds its idle connection dead (no error until used);
    # pool.query closes it; the 7 s request reconnects.
    assert list(cols["failures_connection_terminated"][:8]) == [0, 0, 0, 0, 0, 0, 1, 0]
    assert cols["successes"].sum() == 18 and cols["connects"][7] == 1
    assert not kinds(world, "pool_error")  # a silent drop raises nothing on the idle client
