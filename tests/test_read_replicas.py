"""Read replicas: one pool per replica in each pod, reads routed there, each server's limit apart.

Tiny exact cases on TEXTBOOK (one pod, 40 requests evenly spaced, 10 ms statements),
the pods' shared gauges with two pools, a crash, validation, the check rule, and the
story of scenarios/read_replicas.toml with the figures its description gives.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import simpy
from builders import FREE_CONNECTS, TEXTBOOK, scenario
from shipped import run

from spiralsim import simulate
from spiralsim.analysis.check import check
from spiralsim.metrics import Recorder
from spiralsim.model.database import FULL_TEXT, Database
from spiralsim.model.pool import Pool
from spiralsim.model.timer import Timer
from spiralsim.model.world import World
from spiralsim.scenario import DatabaseConfig, PoolConfig, ScenarioError, scenario_from_toml

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "read_replicas.toml"
READS = ("database.read_replicas=2", "services.api.endpoints.q.reads=true",
         "services.api.endpoints.q.statement_wait=10ms")


def test_reads_go_to_the_replicas_in_turn_and_warm_up_to_the_primary():
    result = simulate(scenario(TEXTBOOK, *READS))
    rec = result.recording
    c = rec.services["api"].cols
    assert c["successes"].sum() == 40
    # round robin per pod: 20 statements of 10 ms on each replica, none on the primary
    assert [r["active_area"].sum() for r in rec.replicas] == pytest.approx([0.2, 0.2])
    assert rec.db["active_area"].sum() == 0.0
    # one connect per replica (30 ms, paid by its first read); the primary keeps its warm connection
    assert c["connects"].sum() == 2
    assert c["latency_sum"].sum() == pytest.approx(40 * 0.01 + 2 * 0.03)
    assert [r["connections_peak"].max() for r in rec.replicas] == [1.0, 1.0]
    assert rec.db["connections_peak"].max() == 1.0
    ts = result.timeseries
    assert ts["replica_connections_max"].max() == 1.0 and ts["replica_connections"].max() == pytest.approx(2.0)
    assert ts["replica_refused_connects"].sum() == 0
    replicas = result.summary["database"]["replicas"]
    assert replicas == {"count": 2, "connections": 1, "peak_connections": 1, "refused_connects": 0,
                        "peak_cpu": 0.0}
    assert result.summary["services"]["api"]["peak_db_connections"] == 1  # its slots on the primary


def test_writes_stay_on_the_primary():
    # `r` reads but has weight 0: the pods keep pools on the replicas, nothing goes there
    result = simulate(scenario(TEXTBOOK, "database.read_replicas=2", "services.api.endpoints.q.statement_wait=10ms",
                               "services.api.endpoints.r.reads=true", "services.api.endpoints.r.weight=0"))
    rec = result.recording
    assert rec.db["active_area"].sum() == pytest.approx(0.4)
    assert [r["active_area"].sum() for r in rec.replicas] == [0.0, 0.0]
    assert [r["connections_peak"].max() for r in rec.replicas] == [0.0, 0.0]
    assert rec.services["api"].cols["latency_sum"].sum() == pytest.approx(0.4)  # on the warm connection


def test_replicas_nobody_reads_from_change_nothing():
    plain = simulate(scenario(TEXTBOOK, "services.api.endpoints.q.statement_wait=10ms"))
    unread = simulate(scenario(TEXTBOOK, "services.api.endpoints.q.statement_wait=10ms", "database.read_replicas=3"))
    for key, col in plain.timeseries.items():
        np.testing.assert_array_equal(unread.timeseries[key], col, err_msg=key)
    assert unread.summary["database"]["replicas"]["count"] == 3
    unread.summary["database"]["replicas"] = plain.summary["database"]["replicas"]
    assert unread.summary == plain.summary


def test_a_full_replica_refuses_while_the_primary_has_room():
    # every server: 2 slots, none reserved; reads of 1 s at 8 a second need 8
    result = simulate(scenario(TEXTBOOK, "database.read_replicas=1", "database.max_connections=2",
                               "database.superuser_reserved_connections=0", "services.api.endpoints.q.reads=true",
                               "services.api.endpoints.q.statement_wait=1s", "services.api.pool.max=5"))
    rec, summary = result.recording, result.summary
    assert rec.replicas[0]["connections_peak"].max() == 2.0
    assert rec.db["connections_peak"].max() == 1.0 and rec.db["refused"].sum() == 0  # the warm one: room for one
    refused = summary["database"]["replicas"]["refused_connects"]
    api = summary["services"]["api"]
    assert refused > 0 and api["failures"]["too_many_clients"] == refused
    assert api["successes"] + refused == 40
    first = [e for e in result.events if e.kind == "first_refused_connect"]
    # the third read, at 0.375 s, is refused after the connect time
    assert [(round(e.time, 9), e.detail) for e in first] == [
        (0.405, f"{FULL_TEXT} (read replica 1 holds 2 of 2, 2 usable by apps)")]


def test_a_pods_gauges_count_the_waiters_of_all_its_pools():
    env = simpy.Environment()
    rec = Recorder(100.0, 1.0, ["api"], 100, replicas=1)
    series = rec.services["api"]
    waiting, in_use = series.pod_level("waiting"), series.pod_level("in_use")
    config = DatabaseConfig(**FREE_CONNECTS)
    primary = Pool(env, PoolConfig(max=1), Database(env, config, rec), series, waiting, in_use, "api")
    replica = Pool(env, PoolConfig(max=1), Database(env, config, rec, 1), series, waiting, in_use, "api")
    noop = lambda *_: None  # noqa: E731
    for pool, at in ((primary, 0.0), (primary, 0.1), (replica, 0.2), (replica, 0.3), (replica, 0.4)):
        Timer(env, at, lambda _t, p=pool: p.acquire(noop, None))
    env.run(until=1.0)
    assert (primary.waiting, replica.waiting) == (1, 2)
    assert waiting.value == 3 and series.pool_waiting.value == 3
    assert in_use.value == 2 and series.pool_total.value == 2
    assert rec.db.connections.value == 1 and rec.replicas[0].connections.value == 1


def test_a_crash_ends_every_pool_of_the_pod():
    world = World(scenario(TEXTBOOK, "database.read_replicas=2", "services.api.endpoints.q.reads=true",
                           "services.api.endpoints.q.statement_wait=1s", "services.api.pool.max=5"))
    for svc in world.services.values():
        svc.traffic.start()
    world.env.run(until=2.0)
    pod = world.services["api"].pods[0]
    pools = [pod.pool, *pod.read_pools]
    # 8 reads in flight, 4 on each replica, whose pool has opened a fifth (idle between two reads)
    assert [(p.total, len(p.idle)) for p in pod.read_pools] == [(5, 1), (5, 1)] and pod.inflight == 8
    assert [r.held for r in world.replicas] == [5, 5] and world.database.held == 1
    pod.crash("a test")
    assert all(p.destroyed for p in pools)
    # the idle ones close at once (the primary's warm one too); those in a statement when it ends
    assert [r.held for r in world.replicas] == [4, 4] and world.database.held == 0
    world.env.run(until=3.5)  # the reads in flight end, then their connections close
    assert [r.held for r in world.replicas] == [0, 0]
    assert sum(p.total for p in pools) == 0


@pytest.mark.parametrize("sets, line", [
    (["services.api.endpoints.q.reads=true"],
     "services.api.endpoints.q.reads: contradictory settings: reads go to a read replica and the database has none;"
     " set database.read_replicas to at least 1 or services.api.endpoints.q.reads = false"),
    (["database.read_replicas=1", "services.api.endpoints.q.reads=true", "services.api.endpoints.q.kind=transaction"],
     "services.api.endpoints.q.reads: contradictory settings: a transaction endpoint (pool.connect) runs on the"
     ' primary; set services.api.endpoints.q.kind = "query" (pool.query) or reads = false'),
    (["database.read_replicas=1", "services.api.endpoints.q.reads=true", "services.api.serverless.max_instances=5"],
     "services.api.endpoints.q.reads: not supported: a serverless service keeps one pool per instance, on the"
     " primary; set services.api.endpoints.q.reads = false (or remove services.api.serverless)"),
    (["database.read_replicas=-1"], "database.read_replicas: must be >= 0, got -1"),
    (["services.api.endpoints.q.reads=1"], "services.api.endpoints.q.reads: expected true or false, got 1"),
])
def test_settings_that_cannot_be(sets, line):
    with pytest.raises(ScenarioError) as info:
        scenario(TEXTBOOK, *sets)
    assert info.value.errors == [line]


def test_a_bad_replica_count_hides_no_other_error():
    with pytest.raises(ScenarioError) as info:
        scenario_from_toml('duration = "1s"\n[database]\nread_replicas = 1.5\n[services.api.traffic]\nrate = 1\n'
                           '[services.api.endpoints.q]\nkind = "transaction"\nreads = true\n')
    assert [e.split(":")[0] for e in info.value.errors] == ["database.read_replicas", "services.api.endpoints.q.reads"]


def test_check_says_the_rule_holds_for_each_replica_apart():
    def finding(*sets):
        found = [f for f in check(scenario(TEXTBOOK, *sets)) if f.rule == "replica_connections"]
        return found[0] if found else None

    assert finding() is None  # no replicas: the rule does not apply
    f = finding(*READS, "services.api.pod.replicas=9", "services.api.pool.max=10")
    assert f.status == "fail" and f.figures["total"] == 90 and f.figures["verdict"] == "tight"
    assert f.line.startswith("each of the 2 read replicas: api 9 pods x 10 = 90 connections at most, above 0.8")
    assert finding(*READS, "services.api.pod.replicas=8", "services.api.pool.max=10").status == "ok"


# ---------------------------------------------------------------- the shipped scenario


def _figures(summary: dict) -> dict:
    api, db = summary["services"]["api"], summary["database"]
    return {"failed": api["failures_total"], "refused": api["failures"]["too_many_clients"],
            "pods": api["pods_max"], "crashes": api["crashes"], "primary_peak": db["peak_connections"],
            "primary_refused": db["refused_connects"], "primary_cpu": db["peak_cpu"],
            "replica_peak": db["replicas"]["peak_connections"], "replica_refused": db["replicas"]["refused_connects"]}


def test_two_replicas_keep_the_primary_quiet():
    s = run(SCENARIO).summary
    assert s["outcome"] == "stable"
    assert _figures(s) == {"failed": 0, "refused": 0, "pods": 4, "crashes": 0, "primary_peak": 20,
                           "primary_refused": 0, "primary_cpu": 0.079, "replica_peak": 29, "replica_refused": 0}
    assert s["database"]["replicas"]["peak_cpu"] == 0.797
    assert s["services"]["api"]["p99_ms"]["during"] < 100


def test_without_replicas_the_primary_spirals_into_its_limit():
    s = run(SCENARIO, "database.read_replicas=0", "services.api.endpoints.browse.reads=false").summary
    assert _figures(s) == {"failed": 78088, "refused": 777, "pods": 12, "crashes": 4, "primary_peak": 97,
                           "primary_refused": 9175, "primary_cpu": 1.0, "replica_peak": 0, "replica_refused": 0}


def test_one_replica_takes_the_spiral_and_refuses_while_the_primary_has_room():
    s = run(SCENARIO, "database.read_replicas=1").summary
    assert _figures(s) == {"failed": 73986, "refused": 1523, "pods": 12, "crashes": 0, "primary_peak": 40,
                           "primary_refused": 0, "primary_cpu": 0.08, "replica_peak": 97, "replica_refused": 14512}
    description = " ".join(run(SCENARIO).scenario.description.split())
    for figure in ("78,088", "9,175", "777", "14,512", "73,986", "1,523", "at most 29 connections"):
        assert figure in description
