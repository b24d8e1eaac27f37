"""Every shipped scenario: conservation, Little's law, determinism to the byte, and the stories."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from shipped import SCENARIOS, run

from spiralsim import load_scenario, simulate
from spiralsim.model.world import World
from spiralsim.vocabulary import EVENT_KINDS, FAILURE_KINDS


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_request_ends_in_exactly_one_outcome(path):
    result = run(path)
    for name, s in result.recording.services.items():
        c = s.cols
        failures = sum(c[k.column].sum() for k in FAILURE_KINDS)
        requests = c["arrivals"].sum()
        # in_flight comes from the model's own count of open requests, not from the difference.
        assert requests == c["successes"].sum() + failures + s.open_requests
        summary = result.summary["services"][name]
        assert summary["requests"] == summary["successes"] + summary["failures_total"] + summary["in_flight"]
        assert summary["in_flight"] == s.open_requests
        assert c["completions"].sum() == c["successes"].sum() + failures


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_connection_is_accounted_for_by_pools_and_database(path):
    """The pools' open connections (their own count) equal the database's held slots; behind
    PgBouncer they are its clients, and its server connections hold the slots; a pod's pools on
    the read replicas (straight, never behind PgBouncer) hold the replicas' slots, each apart."""
    world = World(load_scenario(path))
    world.run()
    # a connect already refused is in its pool's total until the refusal arrives, but holds no slot
    direct = [pool for svc in world.services.values() for p in svc.pods if p.pool
              for pool in ([] if svc.bouncer else [p.pool]) + p.read_pools]
    clients = sum(svc.bouncer.clients for svc in world.services.values() if svc.bouncer is not None)
    pools_total = (sum(world.recorder.services[s].pool_total.value for s in world.services) - clients
                   - sum(pool.refusing for pool in direct))
    servers = sum(svc.bouncer.server_slots() for svc in world.services.values() if svc.bouncer is not None)
    assert pools_total + servers == world.database.held + sum(r.held for r in world.replicas)
    for name, svc in world.services.items():
        if svc.bouncer is not None and not svc.wiring.replicas:
            assert world.recorder.services[name].pool_total.value == svc.bouncer.clients
    live = sum(p.pool.total - p.pool.refusing for svc in world.services.values() if svc.bouncer is None
               for p in svc.live_pods() if p.pool)
    assert live <= world.database.held
    for i, replica in enumerate(world.replicas):
        on_it = sum(p.read_pools[i].total - p.read_pools[i].refusing for svc in world.services.values()
                    for p in svc.live_pods() if p.read_pools)
        assert on_it <= replica.held <= replica.reserved_from - replica.other


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_littles_law_sample_path(path):
    """Area under requests-in-system = the sum of every request's time in the system.

    Completed requests contribute their latency; the ones still open at the end
    at most the whole run each. So L*T - lambda*T*W lies in [0, open_at_end * T]
    (Little's law on one sample path, with its edge term bounded).
    """
    result = run(path)
    duration = result.scenario.duration
    for s in result.recording.services.values():
        area = s.cols["requests_open_area"].sum()
        latency_sum = s.cols["latency_sum"].sum()
        assert area >= latency_sum * (1 - 1e-9)
        assert area - latency_sum <= s.open_requests * duration + 1e-6


def _digest(result) -> str:
    h = hashlib.sha256()
    for key, col in result.timeseries.items():
        h.update(key.encode())
        h.update(np.asarray(col).astype(str if col.dtype == object else col.dtype).tobytes())
    h.update(repr(result.events).encode())
    h.update(repr(result.summary).encode())
    return h.hexdigest()


#: A second run in the same process gives the same bytes (no state left between runs). The golden runs
#: already pin every scenario's bytes across processes, so the default run repeats only the main job
#: here; the others are `slow` (CI).
@pytest.mark.parametrize("path", [p if p.stem == "push_spike" else pytest.param(p, marks=pytest.mark.slow)
                                  for p in SCENARIOS], ids=lambda p: p.stem)
def test_same_seed_same_bytes(path):
    assert _digest(run(path)) == _digest(simulate(load_scenario(path)))


def test_another_seed_changes_the_run():
    path = SCENARIOS[0]
    assert _digest(run(path)) != _digest(simulate(load_scenario(path, seed=7)))


def test_retry_storm_stays_down_after_the_trigger():
    summary = run(Path("scenarios/retry_storm.toml")).summary
    assert summary["outcome"] == "metastable"


@pytest.mark.parametrize("fix", ["services.api.pool.acquire_timeout=1s", "services.api.client.max_attempts=1"])
def test_retry_storm_recovers_under_each_fix(fix):
    summary = run(Path("scenarios/retry_storm.toml"), fix).summary
    assert summary["outcome"] == "recovered"
    assert summary["recovery_s"] is not None and summary["recovery_s"] < 120


def test_slow_query_spirals_then_recovers():
    result = run(Path("scenarios/slow_query.toml"))
    summary = result.summary
    api = summary["services"]["api"]
    assert summary["outcome"] == "recovered"
    assert api["p99_ms"]["before"] < 100 and api["p99_ms"]["during"] > 3000
    assert api["amplification"] > 1.5  # the retries
    assert api["wasted"] > 0  # work done for callers that had left


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_event_kind_is_in_the_vocabulary(path):
    """The report and the dashboard read each kind's row: a kind the model writes must have one."""
    assert {e.kind for e in run(path).events} <= set(EVENT_KINDS)


# ---------------------------------------------------------------- verdicts a post-mortem can trust

OUTCOMES = {
    "db_restart": "recovered", "idle_in_transaction": "stuck", "leak": "stuck", "push_spike": "recovered",
    "retry_storm": "metastable", "shared_database": "recovered", "slow_query": "recovered",
    "pgbouncer": "recovered", "serverless": "stuck", "background_jobs": "recovered", "sane_defaults": "recovered",
    "read_replicas": "stable", "liveness_spiral": "recovered", "slow_query_creep": "recovered",
    "backend_bloat": "stuck",
}


def test_every_shipped_scenario_has_its_outcome():
    assert {p.stem: run(p).summary["outcome"] for p in SCENARIOS} == OUTCOMES


def test_push_spike_recovers_once_the_spike_is_over_and_tells_its_impact():
    s = run(Path("scenarios/push_spike.toml")).summary
    assert 0 <= s["recovery_s"] <= 60  # healthy again within the settle minute after the 90 s of 800 req/s
    api = s["services"]["api"]["impact"]
    # the pool's queue (its acquire timeout) and the starved new pods (refused connects) fail requests
    failures = {k: n for k, n in s["services"]["api"]["failures"].items() if n}
    assert failures["acquire_timeout"] > failures["too_many_clients"] > 0
    assert api["failed"] == sum(failures.values()) and api["slow"] > 0


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_no_alert_fires_and_resolves_at_once(path):
    for a in run(path).summary["alerts"]:
        assert a["resolved_at"] is None or a["resolved_at"] > a["fired_at"], a


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_a_service_never_holds_more_database_slots_than_there_are(path):
    result = run(path)
    db = result.scenario.database
    usable = db.max_connections - db.superuser_reserved_connections - db.other_connections
    for name, v in result.summary["services"].items():
        assert v["peak_db_connections"] <= usable, name


def test_an_idle_pool_held_open_is_not_saturated_and_gets_no_credit():
    s = run(Path("scenarios/push_spike.toml")).summary
    assert not [a for a in s["alerts"] if a["service"] == "reports"]  # min = max, 0 of 50 in use
    assert not [a for a in s["alerts"] if a["name"] == "pool_collapse"]  # not after the scale-down either


def test_lead_goes_only_to_alerts_on_the_service_hurt_or_the_database():
    for path in SCENARIOS:
        s = run(path).summary
        for a in s["alerts"]:
            if a["lead_s"] is not None and a["service"]:
                assert s["services"][a["service"]]["impact"]["start_s"] is not None, (path.stem, a)


def _description_sets(path: Path) -> list[list[str]]:
    """The `--set` overrides each line of a scenario's description suggests (one fix a line)."""
    import re
    import shlex
    fixes = []
    for line in load_scenario(path).description.splitlines():
        if "--set" in line:
            words = shlex.split(line.strip().lstrip(".").strip().lstrip("and").strip())
            fixes.append([w.rstrip(".,;:") for i, w in enumerate(words) if i and words[i - 1] == "--set"])
    return [f for f in fixes if f and all(re.match(r"^[\w.]+=", w) for w in f)]


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_fix_a_description_suggests_is_a_valid_scenario(path):
    for fix in _description_sets(path):
        load_scenario(path, fix)


@pytest.mark.parametrize("name, fix, verdict", [
    ("push_spike", (), "fails"),
    ("push_spike", ("services.api.autoscaler.max_replicas=4",), "tight"),
    ("shared_database", (), "fails"),
    ("shared_database", ("services.orders.pool.max=5", "services.orders.pool.min=5",
                         "services.orders.pod.warm_connections=5"), "tight"),
])
def test_the_report_and_the_description_agree_on_the_arithmetic(name, fix, verdict):
    from spiralsim.analysis import arithmetic

    path = Path(f"scenarios/{name}.toml")
    got = arithmetic(load_scenario(path, fix)).verdict
    assert got == verdict
    description = " ".join(load_scenario(path).description.split())
    words = {"fails": "above the 97 usable slots", "tight": "within the 97 usable slots"}
    assert words[verdict] in description
