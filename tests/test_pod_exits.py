"""How a pod's process can end besides a crash: OOMKilled past its memory limit, an exit on SIGTERM
without the article's shutdown handler, and a node lost with it (sessions left on the server).
Exact cases on the LIFECYCLE and SESSIONS builders, then push_spike's directions."""
from __future__ import annotations

import pytest
from builders import FORTY_ARRIVALS, LIFECYCLE, SESSION_SERVICE, SESSIONS, merge, scenario

from spiralsim.model.autoscaler import COUNTED, MISSING
from spiralsim.model.keepalive import LostSession
from spiralsim.model.world import World
from spiralsim.scenario import ScenarioError
from spiralsim.vocabulary import SIGNALS

#: Requests of 1 s each, one connection: the 40 arrivals (every 0.125 s) pile up in the pool's queue.
PILE_UP = ("services.api.endpoints.q.statement_wait=1s", "services.api.pool.max=1", "services.api.pod.startup=1s",
           "services.api.pod.memory_base_mb=1", "services.api.pod.request_memory_kb=1024")


def events(world: World, *kinds: str) -> list[tuple[float, str]]:
    return [(round(e.time, 6), e.detail) for e in world.recorder.events if e.kind in kinds]


def pile_up(limit_mb: float) -> World:
    return World(scenario(LIFECYCLE, *PILE_UP, f"services.api.pod.memory_limit_mb={limit_mb}", duration="3s",
                          services={"api": {"traffic": FORTY_ARRIVALS}}))


def test_a_pod_past_its_memory_limit_is_oom_killed_with_every_request_it_holds():
    # 1 MB at rest + 1 MB a request: 4.5 MB holds 3 requests; the 4th (0.5 s) passes the limit.
    world = pile_up(4.5)
    rec = world.run()
    # restarted at once, ready at 1.5 s, it holds the next four by 1.875 s: killed again (CrashLoopBackOff)
    killed = ("api-0 crashed: OOMKilled: 4 requests in flight at 1024 KB each and 1 MB at rest pass its 4.5 MB limit;"
              " restart in")
    assert events(world, "oom_killed") == [(0.5, killed + " 0 s"), (1.875, killed + " 10 s")]
    c = rec.services["api"].cols
    assert c["failures_pod_crashed"][0] == 4  # all it held, the one that passed the limit included
    assert rec.services["api"].crashes == 2


def test_exactly_at_the_limit_is_not_over_it():
    # 5 MB holds 4 requests exactly: the 5th, at 0.625 s, passes it.
    world = pile_up(5)
    world.run()
    assert [t for t, _ in events(world, "oom_killed")][0] == 0.625


def test_no_limit_no_kill():
    world = World(scenario(LIFECYCLE, *PILE_UP, duration="3s", services={"api": {"traffic": FORTY_ARRIVALS}}))
    world.run()
    assert events(world, "oom_killed") == []


def test_a_limit_below_the_process_at_rest_is_one_clear_error():
    with pytest.raises(ScenarioError) as info:
        scenario(LIFECYCLE, "services.api.pod.memory_limit_mb=64")
    assert info.value.errors == [
        "services.api.pod.memory_limit_mb: contradictory settings: 64 MB is no more than the process at rest"
        " (memory_base_mb = 64): it could never start; raise services.api.pod.memory_limit_mb or lower"
        " services.api.pod.memory_base_mb"]


def scale_down(graceful: bool) -> World:
    """Four pods of 5 warm connections, 2 s statements; at 3 s the deployment goes to 1 replica."""
    return World(scenario(
        LIFECYCLE, "services.api.endpoints.q.statement_wait=2s",
        f"services.api.pod.graceful_shutdown={str(graceful).lower()}", duration="30s",
        services={"api": {"traffic": FORTY_ARRIVALS,
                          "pod": {"replicas": 4, "warm_connections": 5, "schedule": [{"at": "3s", "replicas": 1}]}}}))


def test_without_the_shutdown_handler_a_scale_down_cuts_the_requests_in_flight():
    graceful, abrupt = scale_down(True), scale_down(False)
    g, a = graceful.run().services["api"].cols, abrupt.run().services["api"].cols
    assert g["successes"].sum() == 40 and g["failures_pod_crashed"].sum() == 0
    # at 3 s the three newest pods hold the requests that arrived from 1.0 s on, round robin: 3 of each 4
    assert a["failures_pod_crashed"][3] == 12 and a["successes"].sum() == 28
    assert a["pods_terminating_peak"].max() == 0  # gone at once, no draining
    # either way the sockets close: the server keeps nothing of the gone pods
    for world in (graceful, abrupt):
        assert world.database.held == world.services["api"].ready[0].pool.total


#: One transaction at 0.125 s that holds its transaction open (idle in transaction) for 10 s, on a pod
#: that starts in 1 s; client timeout 2 s. Keepalive after 2 s of silence, 3 probes 1 s apart.
THINKER = merge(SESSION_SERVICE, {
    "endpoints": {"e": {"kind": "transaction", "statements": 2, "think": "10s"}},
    "traffic": {"rate": 8, "arrivals": "deterministic", "phases": [{"start": "0.2s", "end": "3s", "rate": 0},
                                                                   {"start": "3s", "end": "10h", "rate": 1}]},
    "client": {"timeout": "2s", "max_attempts": 1},
    "pool": {"max": 1},
})
FAST = ("database.tcp_keepalives_idle=2s", "database.tcp_keepalives_interval=1s", "database.tcp_keepalives_count=3")
LOST = [{"kind": "node_lost", "start": "1s", "end": "50s"}]


def node_lost(*sets: str) -> World:
    return World(scenario(SESSIONS, *sets, duration="60s", services={"api": THINKER}, incidents=LOST))


def test_a_lost_node_leaves_its_sessions_until_keepalive_tells_the_server():
    world = node_lost(*FAST)
    world.services["api"].traffic.start()
    lost = []
    for t in (1.2, 5.1, 5.2):
        world.env.run(until=t)
        lost.append(sum(type(c) is LostSession for c in world.database.sessions.live.values()))
    # last heard at 0.165 s (its first statement's answer): dead at 0.165 + 2 + 3 x 1 = 5.165 s
    assert lost == [1, 1, 0]
    assert events(world, "pod_lost") == [
        (1.0, "api-0 lost with its node: 1 requests in flight never answered, 1 sessions left on the database")]


def test_a_lost_pod_takes_traffic_until_the_grace_period_then_is_replaced_at_eviction():
    world = node_lost()  # keepalive's defaults: the session outlives the run
    rec = world.run()
    c = rec.services["api"].cols
    # the transaction in flight and the 38 requests sent to it (one a second from 3 s to 40 s) time out,
    # 2 s each; from 41 s it is NotReady: 503 until its replacement is ready (evicted at 50 s, ready at 51 s)
    assert c["failures_client_timeout"][:43].sum() == 1 + 38
    assert c["failures_no_ready_pod"][41:51].sum() == 10 and c["failures_no_ready_pod"].sum() == 10
    assert events(world, "pod_evicted") == [(50.0, "api-0 deleted from its lost node: the deployment replaces it")]
    assert [p.name for p in world.services["api"].live_pods()] == ["api-1"]
    assert sum(type(c) is LostSession for c in world.database.sessions.live.values()) == 1


def test_node_lost_takes_no_factor_and_only_it_takes_pods():
    with pytest.raises(ScenarioError) as info:
        scenario(SESSIONS, duration="60s", services={"api": THINKER},
                 incidents=[{"kind": "db_restart", "start": "1s", "end": "2s", "pods": 2}])
    assert info.value.errors == ["incidents[0].pods: contradictory settings: only node_lost loses pods, not"
                                 " db_restart; remove incidents[0].pods"]


def test_the_hpa_gets_no_metric_from_a_lost_pod():
    world = World(scenario(LIFECYCLE, duration="10s", services={"api": {
        "pod": {"replicas": 2}, "autoscaler": {"max_replicas": 4, "signal": "cpu", "target": 0.5}}},
        incidents=[{"kind": "node_lost", "start": "1s", "end": "5s"}]))
    world.env.run(until=2.0)
    svc = world.services["api"]
    live = svc.live_pods()
    assert [p.lost for p in live] == [True, False]  # the oldest
    assert [k for k, _ in svc.autoscaler._cpu(2.0, live)][0] == MISSING
    assert [k for k, _ in svc.autoscaler._pods_metric(2.0, live, SIGNALS["pool_utilization"])] == [MISSING, COUNTED]
