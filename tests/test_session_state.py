"""Session state that outlives a request: a SET ROLE without RESET (the article's multi-tenant
special case), on tiny cases with one connection, so the next user of the session is known."""
from __future__ import annotations

import pytest
from builders import SESSION_SERVICE, SESSIONS, merge, scenario

from spiralsim import simulate
from spiralsim.scenario import ScenarioError

TENANT = {"kind": "transaction", "set_role": True, "role_leak_rate": 1.0, "statement_cpu": 0,
          "distribution": "deterministic", "statement_wait": "10ms"}
PUBLIC = {"kind": "transaction", "statement_cpu": 0, "distribution": "deterministic", "statement_wait": "10ms"}

#: 199 requests over 20 s (one every 0.1 s, from 0.1 s), half of each endpoint at random, all on one
#: pooled connection.
SHARED = merge(SESSION_SERVICE, {
    "traffic": {"rate": 10, "arrivals": "deterministic", "phases": [{"start": "20s", "end": "10h", "rate": 0}]},
    "endpoints": {"e": None, "tenant": TENANT, "public": PUBLIC},
    "pod": {"startup": "1s", "warm_connections": 1},
    "pool": {"max": 1}})


def run(*sets: str, svc: dict = SHARED) -> dict:
    return simulate(scenario(SESSIONS, *sets, services={"api": svc}, duration="30s")).summary["services"]["api"]


def test_a_role_never_reset_is_inherited_by_the_next_request_on_the_session():
    a = run()
    assert a["successes"] == 199 and a["failures_total"] == 0
    # one connection, never closed: once a tenant request has left its role, every public request runs
    # under a tenant's role (the few public requests before any tenant one do not). The public requests
    # are Binomial(199, 1/2): 99.5 +- 3 standard deviations (7.05) covers them.
    assert 99.5 - 3 * 7.05 <= a["foreign_role"] <= 99.5 + 3 * 7.05


def test_reset_role_prevents_it():
    assert run("services.api.endpoints.tenant.role_leak_rate=0")["foreign_role"] == 0


def test_every_request_setting_its_own_role_is_safe_too():
    assert run("services.api.endpoints.public.set_role=true")["foreign_role"] == 0


def test_a_closed_connection_takes_the_role_with_it():
    leaky = run()["foreign_role"]
    # max_uses 1: every connection is closed after one use; the next request gets a fresh session
    assert run("services.api.pool.max_uses=1")["foreign_role"] == 0 < leaky


def test_behind_pgbouncer_in_transaction_mode_a_role_crosses_pods():
    svc = merge(SHARED, {"pod": {"replicas": 2, "startup": "1s", "warm_connections": 1}, "pool": {"max": 1},
                         "pgbouncer": {"pool_mode": "transaction", "default_pool_size": 1}})
    # each pod resets nothing of the other's; the one server connection carries the role to both
    assert run(svc=svc)["foreign_role"] >= 99.5 - 3 * 7.05 - 5


def test_set_role_needs_a_checked_out_client():
    with pytest.raises(ScenarioError) as info:
        run("services.api.endpoints.tenant.kind=query", "services.api.endpoints.public.role_leak_rate=0.5")
    assert [e.split(":")[0] for e in info.value.errors] == [
        "services.api.endpoints.tenant.set_role", "services.api.endpoints.public.role_leak_rate"]
