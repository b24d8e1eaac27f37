"""The client's and the pod's defences, each on a tiny exact case, then in a story:
the retry budget, the circuit breaker, adaptive throttling, the AIMD concurrency limit,
which kinds are retried, transient errors, retries after a random delay, and the
client 'error' listener that releases a dead client."""
from __future__ import annotations

import math

import pytest
from builders import SESSIONS, TEXTBOOK, merge, scenario
from test_sessions import LEAKY, kinds, run, total

from spiralsim import load_scenario, simulate
from spiralsim.metrics import Recorder
from spiralsim.model.breaker import CLOSED, HALF_OPEN, OPEN, Breaker
from spiralsim.model.concurrency_limit import AimdLimit
from spiralsim.model.retry_budget import BURST, RetryBudget
from spiralsim.model.rng import Draws, stream
from spiralsim.model.throttle import Throttle
from spiralsim.scenario import PodConfig

# ---------------------------------------------------------------- the retry budget


def test_retry_budget_starts_full_then_allows_a_ratio_of_successes():
    budget = RetryBudget(0.1)
    assert [budget.allow() for _ in range(int(BURST) + 1)] == [True] * int(BURST) + [False]
    for _ in range(9):
        budget.success()
    assert not budget.allow()  # 0.9 of a token
    budget.success()
    assert budget.allow() and not budget.allow()  # ten successes earn one retry
    for _ in range(1000):
        budget.success()
    assert budget.tokens == BURST  # never more than the burst


# ---------------------------------------------------------------- the circuit breaker


def _breaker(**kw) -> tuple[Breaker, list]:
    changes: list = []
    rec = Recorder(100.0, 1.0, ["api"], 100)
    args = dict(error_rate=0.5, window=10.0, min_requests=4, open_s=5.0)
    args.update(kw)
    b = Breaker(level=rec.services["api"].breaker_state,
                on_change=lambda now, state, why: changes.append((now, state, why)), **args)
    return b, changes


def test_breaker_opens_on_the_error_rate_once_the_window_holds_enough():
    b, changes = _breaker()
    for t, err in ((0.1, "client_timeout"), (0.2, None), (0.3, "client_timeout")):
        assert b.allow(t) == 1
        b.record(t, err, False)
    assert b.state == CLOSED  # 2 of 3 failed, but fewer than min_requests (4)
    b.record(0.4, "statement_error", False)  # the request's own fault: not counted
    assert b.state == CLOSED
    b.record(0.5, None, False)
    assert b.state == CLOSED  # 2 of 4: 50 % — opens at >= 50 %? only counted on a failure
    b.record(0.6, "acquire_timeout", False)
    assert b.state == OPEN and changes[-1][:2] == (0.6, OPEN)
    assert "3 of the last 5 attempts failed (60 % >= 50 %)" in changes[-1][2]


def test_breaker_refuses_while_open_then_lets_one_trial_through():
    b, changes = _breaker()
    b._open(10.0, "test")
    assert b.allow(14.9) == 0
    assert b.allow(15.0) == 2 and b.state == HALF_OPEN  # the trial
    assert b.allow(15.1) == 0  # the others are refused while it is out
    b.record(15.2, "client_timeout", True)  # the trial failed: open again, for another 5 s
    assert b.state == OPEN and b.allow(20.1) == 0 and b.allow(20.2) == 2
    b.record(20.3, None, True)
    assert b.state == CLOSED and b.allow(20.4) == 1
    assert [c[1] for c in changes] == [OPEN, HALF_OPEN, OPEN, HALF_OPEN, CLOSED]


def test_breaker_forgets_outside_its_window():
    b, _ = _breaker()
    for t in (0.1, 0.2, 0.3):
        b.record(t, "client_timeout", False)
    b.record(10.5, "client_timeout", False)  # the first three are more than 10 s old
    assert b.state == CLOSED


# ---------------------------------------------------------------- adaptive throttling


def test_throttle_probability_is_the_sre_books_formula():
    th = Throttle(2.0, 120.0, Draws(stream(1, "t"), "uniform"))
    assert th.probability(0.0) == 0.0
    for i in range(100):
        th.reject(1.0)
    for i in range(30):
        th.accepted(1.0)
    # requests 100, accepts 30: (100 - 2 x 30) / (100 + 1)
    assert th.probability(2.0) == pytest.approx((100 - 60) / 101)
    for i in range(20):
        th.accepted(3.0)
    assert th.probability(3.0) == 0.0  # 2 x 50 accepts >= 100 requests
    assert th.probability(130.0) == 0.0  # all of it has left the 2-minute window
    assert th.sum_requests == 0 and th.sum_accepts == 0


def test_throttle_rejects_with_that_probability():
    th = Throttle(2.0, 120.0, Draws(stream(7, "t"), "uniform"))
    th.sum_requests = 0
    rejected = 0
    n = 20000
    for i in range(n):
        th.requests[0] = th.sum_requests = 10_000  # hold the window fixed: p = (10000 - 2 x 2000) / 10001
        th.accepts[0] = th.sum_accepts = 2000
        th.slice_no[0] = 0
        th.current = 0
        rejected += th.reject(0.0)
    p = 6000 / 10001
    sd = math.sqrt(n * p * (1 - p))
    assert abs(rejected - n * p) < 4 * sd  # binomial: 4 standard deviations


# ---------------------------------------------------------------- AIMD


def test_aimd_steps_as_netflix_concurrency_limits():
    rec = Recorder(100.0, 1.0, ["api"], 100)
    s = rec.services["api"]
    lim = AimdLimit(PodConfig(adaptive_concurrency=True, aimd_initial=20, aimd_min=10),
                    s.concurrency_limit, s.limited_pods)
    lim.start(0.0)
    lim.sample(1.0, 0.01, 10, None)  # half busy: +1
    assert lim.limit == 21
    lim.sample(1.0, 0.01, 10, None)  # 10 x 2 < 21: no change
    assert lim.limit == 21
    lim.sample(1.0, 0.01, 15, "acquire_timeout")  # a drop: x 0.9, whole
    assert lim.limit == 18
    lim.sample(1.0, 6.0, 15, None)  # slower than 5 s: a drop too
    assert lim.limit == 16
    lim.sample(1.0, 0.01, 15, "statement_error")  # the request's own fault: 15 x 2 >= 16, +1
    assert lim.limit == 17
    for _ in range(20):
        lim.sample(1.0, 0.01, 15, "client_timeout")
    assert lim.limit == 10  # never below aimd_min
    assert s.concurrency_limit.value == 10 and s.limited_pods.value == 1
    lim.stop(2.0)
    assert s.concurrency_limit.value == 0 and s.limited_pods.value == 0


# ---------------------------------------------------------------- in a run

TIMEOUTS = merge(TEXTBOOK, {"services": {"api": {"client": {"timeout": "1s", "max_attempts": 3},
                                                  "endpoints": {"q": {"statement_wait": "2s"}}}}})


def _totals(s) -> dict:
    r = simulate(s)
    return r.summary["services"]["api"]


def test_retry_on_decides_what_is_retried():
    # every attempt times out after 1 s (statements take 2 s): retried twice by default...
    a = _totals(scenario(TIMEOUTS))
    assert (a["attempts"], a["failures"]["client_timeout"]) == (120, 40)
    # ...not at all when client_timeout is not in retry_on
    b = _totals(scenario(TIMEOUTS, 'services.api.client.retry_on=["acquire_timeout"]'))
    assert (b["attempts"], b["failures"]["client_timeout"]) == (40, 40)


def test_retry_budget_denies_retries_without_successes():
    a = _totals(scenario(TIMEOUTS, "services.api.client.retry_budget=0.1"))
    # nothing succeeds: the bucket's 10 tokens are all the retries there are
    # Tokens go in the order of timeouts: the first attempts of requests 1-8 time out at 1.125 .. 2.0 s
    # (8 tokens); at 2.125 s request 1's second attempt and request 9's first (tokens 9 and 10). Only
    # request 1 retried twice; each of the 39 others was denied one retry.
    assert a["retries"] == 10 and a["retries_denied"] == 39
    assert a["failures_total"] == 40


def test_breaker_refuses_at_once_and_counts_the_refusals():
    a = _totals(scenario(TIMEOUTS, "services.api.client.circuit_breaker=true",
                         "services.api.client.breaker_min_requests=4", "services.api.client.max_attempts=1"))
    assert a["failures"]["circuit_open"] > 0
    assert a["refused_attempts"]["circuit_open"] == a["failures"]["circuit_open"]
    assert a["failures"]["circuit_open"] + a["failures"]["client_timeout"] == 40


def test_refused_attempts_are_counted_even_when_a_retry_succeeds():
    shed = merge(TEXTBOOK, {"services": {"api": {
        "traffic": {"rate": 100, "arrivals": "deterministic", "phases": [{"start": "1s", "end": "1h", "rate": 0}]},
        "endpoints": {"q": {"statement_wait": "15ms"}},
        "client": {"max_attempts": 10, "backoff": "exponential", "backoff_base": "10ms"},
        "pod": {"max_inflight": 1}}}})
    a = _totals(scenario(shed))
    assert a["successes"] > 50 and a["successes"] + a["failures_total"] == a["requests"]
    # shed is the only error: each shed attempt was retried or ended its request
    assert a["refused_attempts"]["shed"] == a["retries"] + a["failures"]["shed"]
    assert a["retries"] > a["failures"]["shed"]  # so some shed attempts belong to requests that succeeded


def test_transient_errors_are_drawn_per_attempt_and_retries_cure_them():
    base = merge(TEXTBOOK, {"services": {"api": {
        "traffic": {"rate": 1000, "arrivals": "poisson", "phases": []},
        # a transaction rolls back and keeps its connection (pool.query would close it: reconnect churn)
        "endpoints": {"q": {"kind": "transaction", "statement_wait": "1ms", "transient_error_rate": 0.3}},
        "pool": {"max": 10}}}, "duration": "20s"})
    once = _totals(scenario(base))
    thrice = _totals(scenario(base, "services.api.client.max_attempts=3"))
    n = once["requests"]
    assert once["in_flight"] < 20 and thrice["in_flight"] < 20
    # Binomial: failed share p once, p^3 with three independent attempts (4 standard deviations).
    for got, p in ((once["failures"]["transient_error"], 0.3), (thrice["failures"]["transient_error"], 0.027)):
        assert abs(got - n * p) < 4 * math.sqrt(n * p * (1 - p)), (got, n * p)
    # error_rate is the request's own: every attempt fails alike and it is not retried
    bad = _totals(scenario(base, "services.api.endpoints.q.transient_error_rate=0",
                           "services.api.endpoints.q.error_rate=0.3", "services.api.client.max_attempts=3"))
    assert bad["attempts"] == bad["requests"]


def test_random_backoff_waits_an_exponential_time_of_mean_base():
    s = scenario(TIMEOUTS, 'services.api.client.backoff="random"', "services.api.client.backoff_base=3s",
                 "services.api.client.max_attempts=2", "duration=1h", "services.api.traffic.rate=8",
                 'services.api.traffic.phases=[{start="100s", end="2h", rate=0}]')
    a = _totals(s)
    # latency = 1 s timeout + Exp(3 s) + 1 s timeout; its mean over 800 requests: 5 s +- 4 sd of the mean
    mean = a["latency_ms"]["mean"] / 1000
    assert abs(mean - 5.0) < 4 * 3.0 / math.sqrt(800)


def test_release_on_client_error_heals_a_leak_under_the_idle_in_transaction_timeout():
    sets = ("database.idle_in_transaction_session_timeout=5s", "services.api.pod.crash_on_client_error=false")
    dead = run(scenario(SESSIONS, *sets, services={"api": LEAKY}))
    healed = run(scenario(SESSIONS, *sets, "services.api.pod.release_on_client_error=true",
                          services={"api": LEAKY}))
    assert not kinds(healed, "pod_crash")
    pool = healed.services["api"].pods[0].pool
    assert pool.total == 0 and healed.recorder.services["api"].pool_dead.value == 0  # released, closed
    assert dead.services["api"].pods[0].pool.total == 3  # without the release: dead clients for good
    assert total(healed, "sessions_killed") == 3


def test_release_on_client_error_lets_only_the_leaking_requests_fail():
    # 0.4 leaks a second, each killed 2 s after: about one leaked client at a time in a pool of 10
    leaky = merge(LEAKY, {"endpoints": {"e": {"error_rate": 0.0}, "bad": {
        "kind": "transaction", "error_rate": 1.0, "leak_on_error": True, "weight": 0.02,
        "statement_cpu": 0, "distribution": "deterministic", "statement_wait": "10ms"}},
        "traffic": {"rate": 20, "phases": [{"start": "60s", "end": "10h", "rate": 0}]},
        "pool": {"max": 10, "acquire_timeout": "1s"}})
    sets = ("database.idle_in_transaction_session_timeout=2s", "services.api.pod.crash_on_client_error=false",
            "duration=70s")
    healed = _totals(scenario(SESSIONS, *sets, "services.api.pod.release_on_client_error=true",
                              services={"api": leaky}))
    dead = _totals(scenario(SESSIONS, *sets, services={"api": leaky}))
    assert healed["failures_total"] == healed["failures"]["statement_error"] == healed["leaked"] > 0
    assert dead["failures"]["acquire_timeout"] > 100  # after ten leaks the pool is full of dead clients


# ---------------------------------------------------------------- the story: retry_storm


def _storm(*sets: str) -> dict:
    return simulate(load_scenario("scenarios/retry_storm.toml", list(sets))).summary["services"]["api"]


def test_a_smaller_retry_budget_means_lower_amplification():
    runs = [_storm(f"services.api.client.retry_budget={r}") for r in (0, 1.0, 0.1, 0.01)]
    retries = [a["retries"] for a in runs]
    # No budget: the spiral, 2.6 attempts per request. Any budget: once nothing succeeds (every answer
    # comes after its client left) there is nothing to retry with, and it recovers.
    assert retries[0] > retries[1] > retries[2] > retries[3], retries
    assert runs[0]["amplification"] > 2 and all(a["amplification"] < 1.01 for a in runs[1:])


#: What retry_storm's description says of each defence, in a 5-minute run (its trigger is 2:00-2:20).
STORM_DEFENCES = {
    "services.api.client.max_attempts=1": "recovered",
    'services.api.pool.acquire_timeout="1s"': "recovered",
    "services.api.pod.max_inflight=50": "recovered",
    "services.api.client.retry_budget=0.1": "recovered",
    "services.api.client.circuit_breaker=true": "recovered",
    "services.api.pod.adaptive_concurrency=true": "recovered",
    'services.api.client.backoff="exponential";services.api.client.jitter="full"': "metastable",
    "services.api.client.throttle_k=2": "metastable",
}


@pytest.mark.parametrize(("sets", "outcome"), STORM_DEFENCES.items(), ids=list(STORM_DEFENCES))
def test_which_defences_turn_the_retry_storm_around(sets, outcome):
    summary = simulate(load_scenario("scenarios/retry_storm.toml", ["duration=5m", *sets.split(";")])).summary
    assert summary["outcome"] == outcome


def test_the_readme_defence_table_switches_real_keys():
    import re
    from pathlib import Path
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    table = text[text.index("## Defences"):]
    table = table[:table.index("\n\n", table.index("| defence"))]
    sets = re.findall(r"`([a-z_.A-Z]+=[^`]+)`", table)
    assert len(sets) >= 15
    for s in sets:
        s = s.replace(", ...]", "]").replace("services.NAME.", "").replace("endpoints.NAME.", "endpoints.e.")
        path = s if s.startswith("database.") else "services.api." + s
        scenario(SESSIONS, path, "services.api.pod.crash_on_client_error=false", services={"api": LEAKY})


#: What slow_query's description says of each defence in its 10-minute run.
SLOW_QUERY_DEFENCES = {
    "services.api.client.retry_budget=0.1": ("recovered", 1.0),
    "services.api.client.circuit_breaker=true": ("recovered", None),
    "services.api.pod.adaptive_concurrency=true": ("recovered", None),
    "services.api.client.throttle_k=2": ("metastable", None),
}


@pytest.mark.parametrize(("sets", "expected"), SLOW_QUERY_DEFENCES.items(), ids=list(SLOW_QUERY_DEFENCES))
def test_no_defence_buys_the_slow_query_capacity(sets, expected):
    summary = simulate(load_scenario("scenarios/slow_query.toml", [sets])).summary
    api = summary["services"]["api"]
    outcome, amplification = expected
    assert summary["outcome"] == outcome
    assert api["failures_total"] > 20_000  # the pool serves 20 of 100 req/s for four minutes, whatever
    if amplification is not None:
        assert api["amplification"] == amplification
