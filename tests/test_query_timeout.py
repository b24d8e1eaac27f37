"""node-postgres's client-side `query_timeout`, the session idle in transaction while the event
loop has yet to send the next statement, and a pod's leaks from before the run: tiny
deterministic cases, exact to the event."""
from __future__ import annotations

import pytest
from builders import SESSION_SERVICE, SESSIONS, TEXTBOOK, merge, scenario

from spiralsim.model.world import World
from spiralsim.scenario import ScenarioError


def run(s) -> World:
    world = World(s)
    world.run()
    return world


def cols(world: World, service: str = "api") -> dict:
    """The service's per-bucket counters and gauges (1 s buckets: a gauge's `_area` is its mean)."""
    return world.recorder.finalize(world.scenario.duration).services[service].cols


def db(world: World) -> dict:
    """The database's per-bucket gauges."""
    return world.recorder.finalize(world.scenario.duration).db


#: One request at 0.125 s of a 3 s statement (SESSION_SERVICE's `e`), a 1 s query_timeout.
SLOW = merge(SESSION_SERVICE, {"endpoints": {"e": {"statement_wait": "3s"}}, "pool": {"query_timeout": "1s"}})


def test_query_timeout_fails_the_caller_and_the_server_goes_on_until_the_statement_ends():
    # pool.query(): connect 30 ms, the statement from 0.155 s to 3.155 s. The timer fires at 1.155 s:
    # the caller gets "Query read timeout" then; nothing cancels the statement, so the backend and
    # its slot stay until 3.155 s, when the statement's end reaches pg-pool's release(err): closed.
    world = run(scenario(SESSIONS, services={"api": SLOW}))
    c = cols(world)
    assert c["failures_query_timeout"].sum() == 1 and c["successes"].sum() == 0
    assert c["latency_sum"].sum() == pytest.approx(1.03)  # answered at 1.155 s, arrived at 0.125 s
    assert db(world)["active_area"][1:3].tolist() == [1.0, 1.0]  # still running on the server
    assert c["closes"][3] == 1 and world.database.held == 0


def test_query_timeout_in_a_handler_without_finally_leaks_the_client_when_the_statement_ends():
    leaky = merge(SLOW, {"endpoints": {"e": {"kind": "transaction", "leak_on_error": True}}})
    world = run(scenario(SESSIONS, services={"api": leaky}))
    c = cols(world)
    assert c["failures_query_timeout"].sum() == 1
    assert c["leaked"][3] == 1  # the throw at 1.155 s skipped release(); the session goes idle at 3.155 s
    assert db(world)["active_area"][2] == 1.0 and db(world)["idle_in_transaction_area"][4] == 1.0
    assert world.database.held == 1 and world.services["api"].pods[0].pool.total == 1


def test_query_timeout_with_try_finally_rolls_back_behind_the_statement_and_keeps_the_client():
    helper = merge(SLOW, {"endpoints": {"e": {"kind": "transaction"}}})
    world = run(scenario(SESSIONS, services={"api": helper}))
    c = cols(world)
    assert c["failures_query_timeout"].sum() == 1 and c["leaked"].sum() == 0
    pool = world.services["api"].pods[0].pool
    assert pool.total == 1 and len(pool.idle) == 1  # ROLLBACK waited for the statement, then release()
    assert world.recorder.db.idle_in_transaction.value == 0 and world.database.held == 1


def test_a_busy_event_loop_turns_a_quick_answer_into_a_query_timeout():
    # Two requests (0.125 s, 0.25 s) of 2 s of event-loop CPU each, one warm connection, 10 ms
    # statements. Request 0 sends its statement at 2.125 s and the answer is there at 2.135 s, but the
    # loop runs request 1's CPU until 4.125 s: the timer (due 3.125 s) comes first, as in Node, whose
    # loop runs expired timers before it reads the socket. Request 0 fails and pg-pool closes its
    # connection; request 1 opens a new one at 4.125 s and succeeds. Without query_timeout both succeed.
    sets = ("services.api.pod.cpu_per_request=2s", "services.api.endpoints.q.statement_wait=10ms",
            "services.api.traffic.phases.0.start=0.3s")
    world = run(scenario(TEXTBOOK, *sets, "services.api.pool.query_timeout=1s", duration="10s"))
    c = cols(world)
    assert c["failures_query_timeout"].sum() == 1 and c["successes"].sum() == 1
    assert c["closes"][4] == 1 and c["connects"][4] == 1
    calm = cols(run(scenario(TEXTBOOK, *sets, duration="10s")))
    assert calm["successes"].sum() == 2 and calm["closes"].sum() == 0


def test_a_transaction_is_idle_in_transaction_while_the_loop_has_its_result():
    # One transaction of two 10 ms statements, 1 s of loop CPU per result: the session is idle in
    # transaction from each answer until the loop sends what comes next (the second statement,
    # then COMMIT): 0.135-1.135 s and 1.145-2.145 s, 2 s in all.
    tx = merge(SESSION_SERVICE, {"endpoints": {"e": {"kind": "transaction", "statements": 2}},
                                 "pod": {"query_result_cpu": "1s", "warm_connections": 1}})
    world = run(scenario(SESSIONS, services={"api": tx}))
    c = cols(world)
    assert c["successes"].sum() == 1
    assert db(world)["idle_in_transaction_area"].sum() == pytest.approx(2.0)
    as_query = merge(tx, {"endpoints": {"e": {"kind": "query"}}})  # pool.query(): idle, not in a transaction
    assert db(run(scenario(SESSIONS, services={"api": as_query})))["idle_in_transaction_area"].sum() == 0


LEAKED_POD = merge(SESSION_SERVICE, {"endpoints": {"e": {"kind": "transaction", "leak_on_error": True}},
                                     "pod": {"leaked_at_start": 3, "warm_connections": 1},
                                     "pool": {"max": 4}})


def test_a_pod_running_at_time_0_carries_its_leaked_clients():
    world = run(scenario(SESSIONS, services={"api": LEAKED_POD}))
    c = cols(world)
    pool = world.services["api"].pods[0].pool
    assert pool.total == 4 and len(pool.idle) == 1  # 3 leaked + 1 warm; the request used the warm one
    assert c["successes"].sum() == 1 and c["leaked"].sum() == 0  # leaked before the run: not this run's
    assert c["pool_leaked_area"][0] == 3.0
    assert db(world)["idle_in_transaction_area"][0] == 3.0 and db(world)["orphans_open_area"][0] == 3.0
    assert world.database.held == 4


@pytest.mark.parametrize("changes, message", [
    ({"endpoints": {"e": {"leak_on_error": None}}}, "needs an endpoint that leaks"),
    ({"pod": {"leaked_at_start": 5}}, "pod.leaked_at_start"),
])
def test_leaked_at_start_needs_a_leaky_endpoint_and_room_in_the_pool(changes, message):
    with pytest.raises(ScenarioError, match=message):
        scenario(SESSIONS, services={"api": merge(LEAKED_POD, changes)})


def test_behind_pgbouncer_each_leaked_client_holds_a_server_connection():
    # Transaction mode lends a server per transaction; an open one keeps it. The two leaked clients' logins
    # are PgBouncer's first (30 ms): from then on 2 of its servers are theirs, idle in transaction; the
    # request at 0.125 s gets a third.
    bounced = merge(LEAKED_POD, {"pod": {"leaked_at_start": 2}, "pgbouncer": {"pool_mode": "transaction"}})
    world = run(scenario(SESSIONS, services={"api": bounced}))
    c = cols(world)
    assert c["successes"].sum() == 1
    assert c["sv_active_area"][1] == 2.0 and db(world)["idle_in_transaction_area"][1] == 2.0
    assert db(world)["orphans_open_area"][-1] == 2.0


# ---------------------------------------------------------------- ALTER ROLE ... SET


def test_a_roles_statement_timeout_beats_the_servers_for_its_sessions_only():
    # Two services of one request each (0.125 s), a 3 s statement. The server cancels at 10 s, api's role
    # (ALTER ROLE api SET statement_timeout = '1s') at 1 s: api's statement fails, jobs' runs to its end.
    jobs = merge(SLOW, {"pool": {"query_timeout": 0}})
    api = merge(jobs, {"role": {"statement_timeout": "1s"}})
    world = run(scenario(SESSIONS, "database.statement_timeout=10s", services={"api": api, "jobs": jobs}))
    assert cols(world)["failures_statement_timeout"].sum() == 1
    assert cols(world, "jobs")["successes"].sum() == 1 and cols(world, "jobs")["failures_statement_timeout"].sum() == 0


def test_a_roles_idle_in_transaction_timeout_ends_its_orphans_only():
    # Each service's one transaction leaks (error_rate 1): idle in transaction from 0.165 s. api's role ends
    # its session after 5 s; jobs' (the server's setting, 0) stays. (crash_on_client_error off: no crash.)
    leaky = merge(SESSION_SERVICE, {"endpoints": {"e": {"kind": "transaction", "error_rate": 1.0,
                                                        "leak_on_error": True}},
                                    "pod": {"crash_on_client_error": False}})
    api = merge(leaky, {"role": {"idle_in_transaction_session_timeout": "5s"}})
    world = run(scenario(SESSIONS, services={"api": api, "jobs": leaky}))
    assert cols(world)["sessions_killed"].sum() == 1 and cols(world, "jobs")["sessions_killed"].sum() == 0
    assert db(world)["idle_in_transaction_area"][4] == 2.0 and db(world)["idle_in_transaction_area"][6] == 1.0


# ---------------------------------------------------------------- memory and swap


def test_a_statement_that_starts_past_the_ram_runs_swap_slowdown_times_slower():
    # RAM 200 MB: shared 128 + 4 warm backends x 10 MB + 20 MB per running statement. The request at
    # 0.125 s runs alone (188 MB): 1 s. The one at 0.25 s makes it 208 MB: 10 x slower, 10 s.
    memory = ("database.memory_mb=200", "database.backend_mb=10", "database.work_mem_mb=20")
    svc = merge(SESSION_SERVICE, {"endpoints": {"e": {"statement_wait": "1s"}}, "pod": {"warm_connections": 4},
                                  "traffic": {"phases": [{"start": "0.3s", "end": "10h", "rate": 0}]}})
    world = run(scenario(SESSIONS, *memory, services={"api": svc}))
    c = cols(world)
    assert c["successes"].sum() == 2 and c["latency_sum"].sum() == pytest.approx(11.0)
    swaps = [e for e in world.recorder.events if e.kind == "db_swap"]
    assert len(swaps) == 1 and swaps[0].time == pytest.approx(0.25) and "208 MB" in swaps[0].detail
    roomy = run(scenario(SESSIONS, *memory, "database.memory_mb=300", services={"api": svc}))
    assert cols(roomy)["latency_sum"].sum() == pytest.approx(2.0)


def test_check_does_the_articles_worst_case_memory_arithmetic():
    from spiralsim.analysis.check import check

    s = scenario(SESSIONS, "database.memory_mb=1024", "database.work_mem_mb=64", services={"api": SESSION_SERVICE})
    (finding,) = [f for f in check(s) if f.rule == "memory"]
    assert finding.status == "fail" and finding.figures["worst_case_mb"] == pytest.approx(128 + 100 * (1.7 + 64))
    ok = scenario(SESSIONS, "database.memory_mb=16384", services={"api": SESSION_SERVICE})
    assert [f.status for f in check(ok) if f.rule == "memory"] == ["ok"]
    assert not [f for f in check(scenario(SESSIONS, services={"api": SESSION_SERVICE})) if f.rule == "memory"]
