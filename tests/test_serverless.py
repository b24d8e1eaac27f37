"""A serverless service: an instance per concurrent request, cold starts, warm reuse of the
last idle instance, frozen pools that keep their connections, the reaper, the concurrency
limit; each on a tiny exact case, then the shipped story."""
from __future__ import annotations

import pytest
from builders import SESSION_SERVICE, SESSIONS, merge, scenario

from spiralsim import load_scenario, simulate
from spiralsim.model.world import World
from spiralsim.scenario import ScenarioError


def fleet(*, rate: float = 8, last: str = "0.2s", **tables) -> dict:
    """SESSION_SERVICE (10 ms statements, no CPU, no timeouts) as functions: one warm instance at
    time 0 with no connection, cold starts of 1 s, reaped after 30 s."""
    traffic = {"rate": rate, "arrivals": "deterministic", "phases": [{"start": last, "end": "10h", "rate": 0}]}
    base = merge(SESSION_SERVICE, {"traffic": traffic, "serverless": {"idle_reap": "30s"},
                                   "pod": {"replicas": 1, "startup": "1s"}})
    return merge(base, tables)


def run(svc: dict, *sets: str, duration: str = "60s") -> World:
    world = World(scenario(SESSIONS, *sets, services={"api": svc}, duration=duration))
    world.run()
    return world


def test_one_instance_per_concurrent_request_and_a_cold_start_for_each_new_one():
    # 80 requests a second before 0.2 s: 15, one every 12.5 ms; each takes 30 ms to connect + 10 ms. The warm
    # instance takes the first; the next three find none idle and start cold (1 s); then the first is free.
    world = run(fleet(rate=80))
    svc = world.services["api"]
    assert svc.created == 4
    cols = world.recorder.finalize(60.0).services["api"].cols
    assert cols["successes"].sum() == 15 and sum(cols[k].sum() for k in cols if k.startswith("failures_")) == 0


def test_the_instance_that_went_idle_last_is_reused_and_its_connection_with_it():
    world = run(fleet(rate=2, last="5s"))  # one request every 0.5 s: the warm instance serves them all
    svc = world.services["api"]
    assert svc.created == 1
    assert world.recorder.services["api"].connects[0] == 1 and sum(world.recorder.services["api"].connects) == 1


def test_a_frozen_instance_keeps_its_connections_past_idle_timeout_until_it_is_reaped():
    world = run(fleet(rate=8, pool={"idle_timeout": "10s"}), duration="60s")
    db = world.recorder.db.connections
    # one request at 0.125 s: a connection opened, then frozen; idle_timeout (10 s) does not run;
    # the reaper ends the instance 30 s after its request, and its connection with it
    assert world.database.held == 0
    rec = world.recorder.finalize(60.0)
    held = rec.db["connections_sample"]
    assert held[20] == 1 and held[29] == 1 and held[31] == 0
    assert rec.services["api"].cols["instances_frozen_sample"][20] == 1
    assert db.value == 0


def test_without_freeze_the_pool_closes_idle_connections_as_usual():
    world = run(fleet(rate=8, pool={"idle_timeout": "10s"}, serverless={"idle_reap": "30s", "freeze": False}))
    held = world.recorder.finalize(60.0).db["connections_sample"]
    assert held[5] == 1 and held[11] == 0  # closed by idle_timeout at 10.165 s


def test_a_thawed_instance_closes_its_overdue_idle_connections():
    world = run(fleet(pool={"idle_timeout": "10s"}, pod={"replicas": 1, "startup": "1s", "warm_connections": 2},
                      traffic={"rate": 8, "arrivals": "deterministic", "phases": [
                          {"start": "0s", "end": "20s", "rate": 0}, {"start": "20s", "end": "20.2s", "rate": 8},
                          {"start": "20.2s", "end": "10h", "rate": 0}]}))
    # The instance has two connections from its start, frozen with it. Its one request at 20.125 s thaws
    # it: the request takes one of them (it asks first), the other, idle for 20 s, closes at once.
    held = world.recorder.finalize(60.0).db["connections_sample"]
    assert held[19] == 2 and held[20] == 1
    assert sum(world.recorder.services["api"].connects) == 0 and world.services["api"].created == 1


def test_at_max_instances_the_platform_answers_429():
    world = run(fleet(rate=80, serverless={"idle_reap": "30s", "max_instances": 2}))
    cols = world.recorder.finalize(60.0).services["api"].cols
    assert cols["failures_too_many_instances"].sum() > 0
    assert world.services["api"].created == 2


def test_serverless_has_no_autoscaler_and_no_schedule():
    with pytest.raises(ScenarioError) as info:
        scenario(SESSIONS, "services.api.autoscaler.target=0.7", "services.api.autoscaler.max_replicas=3",
                 "services.api.pod.schedule=[{at='1s', replicas=2}]", services={"api": fleet()})
    assert {e.split(":")[0] for e in info.value.errors} == {"services.api.autoscaler", "services.api.pod.schedule"}


# ---------------------------------------------------------------- the story


@pytest.fixture(scope="module")
def story():
    return {name: simulate(load_scenario("scenarios/serverless.toml", sets)).summary for name, sets in {
        "baseline": [], "reap_1m": ["services.api.serverless.idle_reap=1m"],
        "reserved_80": ["services.api.serverless.max_instances=80"],
        "pgbouncer": ['services.api.pgbouncer.pool_mode="transaction"', "services.api.pgbouncer.max_client_conn=5000",
                      "services.api.pgbouncer.default_pool_size=60"],
    }.items()}


def test_a_burst_of_cold_starts_takes_every_connection_and_frozen_instances_keep_them(story):
    s = story["baseline"]
    api = s["services"]["api"]
    assert s["outcome"] == "stuck" and "frozen instances" in s["outcome_reason"]
    assert api["pods_max"] > 300 and s["database"]["peak_connections"] >= 96
    assert api["failures"]["too_many_clients"] > 0.8 * api["requests"]


def test_reaping_sooner_ends_it_and_a_concurrency_cap_prevents_it(story):
    assert story["reap_1m"]["outcome"] == "recovered"
    capped = story["reserved_80"]
    assert capped["database"]["refused_connects"] == 0
    api = capped["services"]["api"]
    assert api["failures_total"] == api["failures"]["too_many_instances"] < 0.01 * api["requests"]


def test_a_proxy_in_front_is_the_answer(story):
    s = story["pgbouncer"]
    api = s["services"]["api"]
    assert s["database"]["refused_connects"] == 0 and s["database"]["peak_connections"] == 60
    assert api["failures_total"] == 0
