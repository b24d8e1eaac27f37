"""When the server frees a silently dropped session (model/keepalive.py): the rule on its own, then
tiny exact runs of a `network_blip`. Connect cost is off here so the times stay round."""
from __future__ import annotations

import math

import pytest
from builders import SESSION_SERVICE, SESSIONS, merge, scenario

from spiralsim.model.keepalive import RETRANSMISSION_TIMEOUT, Keepalive, LostSession
from spiralsim.model.world import World
from spiralsim.scenario import DatabaseConfig

#: keepalive after 2 s of silence, then 3 probes 1 s apart: dead 5 s after the client was last heard.
FAST = ("database.tcp_keepalives_idle=2s", "database.tcp_keepalives_interval=1s", "database.tcp_keepalives_count=3")
FREE_CONNECTS = ("database.connect_cpu=0", "database.refused_connect_cpu=0", "database.accept_rate=0")
BLIP = [{"kind": "network_blip", "start": "1s", "end": "1.5s"}]


def test_the_keepalive_rule():
    k = Keepalive()  # Linux: 7200 s, then 9 probes 75 s apart
    assert k.dead_at(100.0, 100.0) == 100.0 + 7200 + 9 * 75
    assert k.dead_at(0.0, 10_000.0) == 2 * 7200 + 9 * 75  # the probe at 7200 s was answered
    assert k.check_finds(0.0, 7875.0) == math.inf  # client_connection_check_interval off
    assert Keepalive(check=10.0).check_finds(3.0, 7875.0) == 7883.0  # the first check at or after it
    zeros = DatabaseConfig(tcp_keepalives_idle=0, tcp_keepalives_interval=0, tcp_keepalives_count=0)
    assert Keepalive.of(zeros) == Keepalive()  # 0: the OS default, as PostgreSQL reads it


def service(**tables: dict) -> dict:
    return merge(SESSION_SERVICE, tables)


def lost_sessions_at(sc, times: list[float]) -> list[int]:
    """How many sessions the server still keeps for dropped connections at each of `times`."""
    world = World(sc)
    for svc in world.services.values():
        svc.traffic.start()
    out = []
    for t in times:
        world.env.run(until=t)
        out.append(sum(type(c) is LostSession for c in world.database.sessions.live.values()))
    return out


#: One transaction at 0.125 s: connects (30 ms), runs a 10 ms statement (to 0.165 s), then thinks 10 s
#: holding its transaction open (idle in transaction) when the network drops at 1 s.
THINKER = service(endpoints={"e": {"kind": "transaction", "statements": 2, "think": "10s"}}, pool={"max": 1})


def test_an_idle_session_lingers_until_keepalive_declares_it_dead():
    sc = scenario(SESSIONS, *FREE_CONNECTS, *FAST, services={"api": THINKER}, incidents=BLIP)
    # last heard at 0.165 s: dead at 0.165 + 2 + 3 * 1 = 5.165 s.
    assert lost_sessions_at(sc, [1.2, 5.16, 5.17]) == [1, 1, 0]
    default = scenario(SESSIONS, *FREE_CONNECTS, services={"api": THINKER}, incidents=BLIP)
    assert lost_sessions_at(default, [19.9]) == [1]  # the defaults: 7,875 s of silence


def test_orphaned_locks_outlive_the_blip():
    reader = service(traffic={"rate": 1, "phases": [{"start": "1.5s", "end": "10h", "rate": 0}]},
                     endpoints={"e": {"lock_conflict": 1.0}})
    sc = scenario(SESSIONS, *FREE_CONNECTS, *FAST, services={"writer": THINKER, "reader": reader}, incidents=BLIP)
    world = World(sc)
    world.run()
    # reader's request at 1.0 s connects once the network is back (1.5 + 0.03 s) and waits for the rows
    # of writer's abandoned transaction until keepalive ends its session at 5.165 s; then 10 ms.
    r = world.recorder.services["reader"]
    assert sum(r.lock_waits) == 1
    assert math.isclose(sum(r.lock_wait_sum), 5.165 - 1.53, rel_tol=1e-9)
    assert math.isclose(sum(r.latency_sum), 5.175 - 1.0, rel_tol=1e-9)
    assert world.database.held == 1  # reader's connection; the lost one is gone


def long_query(wait: str) -> dict:
    """One query at 0.125 s: connected at 0.155 s, its statement waits `wait` (running at the drop)."""
    return service(endpoints={"e": {"statement_wait": wait}}, pool={"max": 1}, client={"max_attempts": 1})


def test_a_running_statement_runs_on_and_its_session_ends_when_it_sends_its_reply():
    # The statement started at 0.155 s: keepalive declares the connection dead at 5.155 s.
    # Ending at 8.155 s, after that, its reply fails to send and the session ends at once.
    sc = scenario(SESSIONS, *FREE_CONNECTS, *FAST, services={"api": long_query("8s")}, incidents=BLIP)
    assert lost_sessions_at(sc, [8.15, 8.16]) == [1, 0]
    # Ending at 3.155 s, before that, the reply is retransmitted until the kernel gives up.
    sc = scenario(SESSIONS, *FREE_CONNECTS, *FAST, "duration=1000s", services={"api": long_query("3s")},
                  incidents=BLIP)
    end = 3.155 + RETRANSMISSION_TIMEOUT
    assert lost_sessions_at(sc, [end - 0.01, end + 0.01]) == [1, 0]


def test_client_connection_check_interval_cancels_the_statement_once_keepalive_has_spoken():
    # Checks every 2 s from 0.155 s; the kernel knows from 5.155 s: the check at 6.155 s ends it.
    sc = scenario(SESSIONS, *FREE_CONNECTS, *FAST, "database.client_connection_check_interval=2s",
                  services={"api": long_query("8s")}, incidents=BLIP)
    assert lost_sessions_at(sc, [6.15, 6.16]) == [1, 0]
    # With the default keepalive the check has nothing to find before the statement ends.
    sc = scenario(SESSIONS, *FREE_CONNECTS, "database.client_connection_check_interval=2s",
                  services={"api": long_query("8s")}, incidents=BLIP)
    assert lost_sessions_at(sc, [19.9]) == [1]


def test_idle_in_transaction_timeout_ends_a_lost_session_as_any_other():
    sc = scenario(SESSIONS, *FREE_CONNECTS, "database.idle_in_transaction_session_timeout=3s",
                  services={"api": THINKER}, incidents=BLIP)
    world = World(sc)
    world.run()
    assert world.database.held == 0
    assert sum(world.recorder.services["api"].sessions_killed) == 1  # at 0.165 + 3 s, silently
    assert sum(world.recorder.services["api"].terminated) == 0


@pytest.mark.parametrize("sets", [(), FAST])
def test_the_client_side_of_a_blip_is_unchanged(sets):
    # The app sees what it saw before keepalive was modelled: found on use (tests/test_sessions.py).
    base = service(traffic={"rate": 1, "phases": [{"start": "20s", "end": "10h", "rate": 0}]},
                   pod={"warm_connections": 1}, pool={"max": 1})
    incident = [{"kind": "network_blip", "start": "5.5s", "end": "6s"}]
    world = World(scenario(SESSIONS, *sets, services={"api": base}, incidents=incident))
    cols = world.run().services["api"].cols
    assert list(cols["failures_connection_terminated"][:8]) == [0, 0, 0, 0, 0, 0, 1, 0]
    assert cols["successes"].sum() == 18 and cols["connects"][7] == 1
