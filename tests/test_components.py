"""Traffic, client, balancer, pod and database on tiny deterministic cases, exact to the float."""
from __future__ import annotations

import math

import pytest
import simpy
from builders import TEXTBOOK, scenario

from spiralsim import simulate
from spiralsim.metrics import Recorder
from spiralsim.model.client import Client
from spiralsim.model.connection import Connection
from spiralsim.model.database import Database
from spiralsim.model.request import Request
from spiralsim.model.timer import Timer
from spiralsim.model.traffic import RateCurve, rate_segments
from spiralsim.model.world import World
from spiralsim.scenario import ClientConfig, DatabaseConfig, PhaseConfig, Scenario


def totals(s: Scenario):
    rec = World(s).run()
    return rec.services["api"].cols


def test_dd1_underloaded_every_request_takes_its_service_time():
    c = totals(scenario(TEXTBOOK, "services.api.endpoints.q.statement_wait=62.5ms"))
    assert c["arrivals"].sum() == 40  # every 125 ms for 5 s
    assert c["successes"].sum() == 40
    assert c["latency_sum"].sum() == 40 * 0.0625
    assert c["acquire_wait_sum"].sum() == 0.0 and c["queued"].sum() == 0


def test_dd1_overloaded_waits_grow_linearly_exactly():
    # Service 250 ms, arrivals every 125 ms: request k waits 0.125 (k - 1) s.
    c = totals(scenario(TEXTBOOK, "services.api.endpoints.q.statement_wait=250ms"))
    assert c["successes"].sum() == 40
    assert c["acquire_wait_sum"].sum() == 0.125 * sum(range(40))  # 97.5 s
    assert c["latency_sum"].sum() == 0.125 * sum(range(40)) + 40 * 0.25
    assert c["queued"].sum() == 39


def test_ramp_arrivals_follow_the_integrated_rate():
    # Rate ramps 0 -> 10/s over 10 s: Lambda(t) = t^2 / 2, so arrival k is at sqrt(2k).
    curve = RateCurve(rate_segments(0.0, [PhaseConfig(start=0, end=10, rate=10, ramp=True)], 10.0))
    t, times = 0.0, []
    while (t := curve.next_arrival(t, 1.0)) != math.inf:
        times.append(t)
    assert len(times) == 50
    assert all(abs(x - math.sqrt(2 * (k + 1))) < 1e-9 for k, x in enumerate(times))


def test_poisson_arrival_count_matches_the_rate():
    poisson = scenario(TEXTBOOK, "services.api.endpoints.q.statement_wait=1ms", "services.api.traffic.rate=200",
                       "services.api.traffic.phases.0.start=100s", duration="100s",
                       services={"api": {"traffic": {"arrivals": None}}})  # the default: Poisson
    n = World(poisson).run().services["api"].cols["arrivals"].sum()
    # Poisson with mean 20000: 4 standard deviations is 566.
    assert abs(n - 20000) < 4 * math.sqrt(20000)


class FixedDraws:
    def __init__(self, value: float):
        self.value = value

    def next(self) -> float:
        return self.value


@pytest.mark.parametrize("jitter, u, expected", [
    ("none", 0.5, [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]),
    ("full", 0.5, [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]),
    ("equal", 0.5, [0.075, 0.15, 0.3, 0.6, 0.75, 0.75]),
])
def test_exponential_backoff_with_brookers_jitters(jitter, u, expected):
    env = simpy.Environment()
    rec = Recorder(10.0, 1.0, ["api"], 100)
    config = ClientConfig(backoff="exponential", backoff_base=0.1, backoff_cap=1.0, jitter=jitter, max_attempts=9)
    client = Client(env, config, 30.0, rec.services["api"], rec, "api", FixedDraws(u))
    req = Request(0.0, None, [], 0)
    got = []
    for attempt in range(1, 7):
        req.attempts = attempt
        got.append(client._backoff(req))
    assert got == pytest.approx(expected, rel=1e-12)


def test_decorrelated_jitter_grows_from_base_and_is_capped():
    env = simpy.Environment()
    rec = Recorder(10.0, 1.0, ["api"], 100)
    config = ClientConfig(backoff="exponential", backoff_base=0.1, backoff_cap=1.0, jitter="decorrelated")
    client = Client(env, config, 30.0, rec.services["api"], rec, "api", FixedDraws(1.0))
    req = Request(0.0, None, [], 0)
    got = [client._backoff(req) for _ in range(4)]  # U=1: sleep = min(cap, 3 x previous)
    assert got == pytest.approx([0.3, 0.9, 1.0, 1.0])


def test_client_timeout_retries_and_the_first_attempt_is_wasted():
    # One request at 0.125 s, 1.5 s statements, a 1 s client timeout, 2 attempts, a pool of 2.
    c = totals(scenario(TEXTBOOK, "services.api.endpoints.q.statement_wait=1.5s", "services.api.pool.max=2",
                        "services.api.client.timeout=1s", "services.api.client.max_attempts=2",
                        "services.api.traffic.phases.0.start=0.2s"))
    assert c["arrivals"].sum() == 1 and c["attempts"].sum() == 2 and c["retries"].sum() == 1
    assert c["failures_client_timeout"].sum() == 1
    assert c["wasted"].sum() == 2  # both attempts finished after their client had left
    assert c["latency_sum"].sum() == pytest.approx(2.0)  # gave up twice, 1 s each, no backoff


def test_upstream_timeout_answers_504_while_the_pod_works_on():
    c = totals(scenario(TEXTBOOK, "services.api.endpoints.q.statement_wait=2s",
                        "services.api.balancer.upstream_timeout=1s", "services.api.traffic.phases.0.start=0.2s"))
    assert c["failures_upstream_timeout"].sum() == 1 and c["wasted"].sum() == 1


def test_max_inflight_sheds_with_503():
    c = totals(scenario(TEXTBOOK, "services.api.endpoints.q.statement_wait=10s", "services.api.pod.max_inflight=3"))
    assert c["failures_shed"].sum() == 40 - 3


def fifo_loop_latencies(arrivals: list[float], cost: float, reply_after: float) -> list[float]:
    """The textbook answer for one event loop served first come first served: each request's
    CPU (`cost`) is booked when it arrives, its query's result `reply_after` its CPU ends is
    booked when it comes back (no cost), behind all work booked before it."""
    free, ends, latencies = 0.0, [], []
    for a in arrivals:
        free = max(a, free) + cost
        ends.append(free)
    for a, end in zip(arrivals, ends):
        back = end + reply_after
        booked = max([e for x, e in zip(arrivals, ends) if x <= back], default=0.0)
        latencies.append(max(back, booked) - a)
    return latencies


def test_pod_cpu_is_first_come_first_served_on_one_core():
    # 40 requests of 200 ms event-loop CPU each, every 125 ms: the loop is the bottleneck. A result
    # (1 ms after its CPU) waits behind every request that reached the loop before it came back.
    c = totals(scenario(TEXTBOOK, "services.api.endpoints.q.statement_wait=1ms",
                        "services.api.pod.cpu_per_request=200ms", "services.api.pool.max=40",
                        "services.api.pod.warm_connections=40"))
    assert c["successes"].sum() == 40
    expected = fifo_loop_latencies([0.125 * (k + 1) for k in range(40)], 0.2, 0.001)
    assert c["latency_sum"].sum() == pytest.approx(sum(expected))
    assert sum(expected) > sum(0.2 + 0.075 * k for k in range(40)) + 40 * 0.001  # (more than the CPU queue alone)
    assert c["cpu_busy"].sum() == pytest.approx(40 * 0.2)


@pytest.mark.parametrize("policy", ["round_robin", "least_outstanding", "random"])
def test_balancer_spreads_attempts_over_pods(policy):
    world = World(scenario(TEXTBOOK, "services.api.endpoints.q.statement_wait=300ms", "services.api.pod.replicas=4",
                           f"services.api.balancer.policy={policy}"))
    world.run()
    pods = world.services["api"].ready
    assert sum(world.recorder.services["api"].successes) == 40
    # 300 ms statements every 125 ms need 3 pods' single connections: every pod gets work.
    assert all(p.pool.idle and p.pool.idle[0].uses > 0 for p in pods)
    if policy == "round_robin":
        assert [p.pool.idle[0].uses for p in pods] == [10, 10, 10, 10]


def test_no_ready_pod_is_503_at_once():
    from spiralsim.model.balancer import Balancer
    answers = []
    b = Balancer("round_robin", [], lambda att, err: answers.append(err), FixedDraws(0.0))
    b.route(object())
    assert answers == ["no_ready_pod"]


class DbHarness:
    def __init__(self, duration: float = 100.0, **db):
        self.env = simpy.Environment()
        self.rec = Recorder(duration, 1.0, ["api"], 100)
        self.db = Database(self.env, DatabaseConfig(**db), self.rec)
        self.log = []

    def statement(self, at: float, who: str, cpu: float, wait: float = 0.0) -> None:
        def done(arg, error):
            self.log.append((round(self.env.now, 9), arg, error or "done"))
        conn = Connection(self.rec.services["api"], self.server_ended)  # a session doing nothing else
        Timer(self.env, at, lambda _t: self.db.execute(conn, cpu, wait, done, who))

    def server_ended(self, conn: Connection, reason: str) -> None:
        self.log.append((round(self.env.now, 9), "session", reason))  # never expected: shows in the log

    def run(self):
        self.env.run(until=100.0)
        return self.log


def test_cores_are_shared_among_active_statements():
    # Processor sharing as such: contention past the cores (tests/test_contention.py) off
    h = DbHarness(cores=1, contention=False)
    h.statement(0.0, "A", cpu=1.0)
    h.statement(0.5, "B", cpu=1.0)
    assert h.run() == [(1.5, "A", "done"), (2.0, "B", "done")]
    h = DbHarness(cores=2, contention=False)
    h.statement(0.0, "A", cpu=1.0)
    h.statement(0.5, "B", cpu=1.0, wait=0.25)
    h.statement(0.5, "C", cpu=1.0)
    # 0.5 .. : three on two cores, 2/3 each; A has 0.5 left -> done at 1.25;
    # B and C then have 0.5 left at full speed -> 1.75, B waits 0.25 more.
    assert h.run() == [(1.25, "A", "done"), (1.75, "C", "done"), (2.0, "B", "done")]
    assert h.rec.db.busy_cores.area[1] == pytest.approx(0.75)  # both cores busy until 1.75, then B waits


def test_statement_timeout_cancels_and_frees_the_core():
    h = DbHarness(cores=1, statement_timeout=1.0, contention=False)  # processor sharing as such
    h.statement(0.0, "A", cpu=5.0)
    h.statement(0.0, "B", cpu=0.25)
    h.statement(2.0, "C", cpu=0.0, wait=3.0)
    # A and B share the core: B done at 0.5; A cancelled at 1.0; C cancelled in its wait at 3.0.
    assert h.run() == [(0.5, "B", "done"), (1.0, "A", "statement_timeout"), (3.0, "C", "statement_timeout")]
    assert h.db.cpu.n == 0


def test_slow_queries_scale_statements_that_start_inside_the_window():
    c = totals(scenario(TEXTBOOK, "services.api.endpoints.q.statement_wait=100ms",
                        incidents=[{"kind": "slow_queries", "start": "1s", "end": "2s", "factor": 10}]))
    # Reference: a single server, arrivals at 0.125 k; a statement is 10x slower when it
    # *starts* in [1, 2), whenever its request arrived.
    free, latency = 0.0, 0.0
    for k in range(1, 41):
        arrive = 0.125 * k
        start = max(arrive, free)
        free = start + (1.0 if 1.0 <= start < 2.0 else 0.1)
        latency += free - arrive
    assert c["successes"].sum() == 40
    assert c["latency_sum"].sum() == pytest.approx(latency, rel=1e-9)


def test_a_query_endpoint_with_a_failing_statement_closes_its_connection():
    c = totals(scenario(TEXTBOOK, "services.api.endpoints.q.statement_wait=10ms",
                        "services.api.endpoints.q.error_rate=1.0"))
    assert c["failures_statement_error"].sum() == 40
    assert c["closes"].sum() == 40 and c["connects"].sum() == 39  # the warm one, then one new per request


def test_a_transaction_keeps_its_connection_through_think_time_and_an_error():
    s = simulate(scenario(TEXTBOOK, services={"api": {"endpoints": {"q": {
        "statement_wait": "10ms", "kind": "transaction", "statements": 3, "think": "20ms", "error_rate": 0.5}}}}))
    c = s.recording.services["api"].cols
    assert c["closes"].sum() == 0 and c["connects"].sum() == 0  # rolled back and released, kept
    assert c["successes"].sum() + c["failures_statement_error"].sum() == 40
    assert s.timeseries["db_idle_in_transaction"].max() > 0


def test_gauge_sample_of_a_short_last_bucket_is_its_value_at_the_end():
    from spiralsim.metrics import Level
    level = Level(3, 1.0)
    level.set(0.5, 4.0)
    level.set(1.5, 2.0)
    level.close(2.5)  # three buckets, the last one half long
    assert list(level.sample[:3]) == [4.0, 2.0, 2.0]
    assert list(level.area[:3]) == [2.0, 4.0 * 0.5 + 2.0 * 0.5, 1.0]
    assert list(level.peak[:3]) == [4.0, 4.0, 2.0]



def test_constant_rate_arrival_gap_is_the_general_formula_to_the_bit():
    """On a constant-rate segment the curve divides (e / rate); the general root it skips,
    2e / (rate + sqrt(rate^2 + 2 k e)) with slope k = 0, is the same float (sqrt(r * r) == r in
    binary floating point): checked over rates from 1e-6 to 1e8 per second."""
    import math
    import random

    rng = random.Random(7)
    for _ in range(20_000):
        rate, e, t = 10.0 ** rng.uniform(-6.0, 8.0), rng.expovariate(1.0), rng.uniform(0.0, 1.0)
        general = t + 2.0 * e / (rate + math.sqrt(rate * rate + 2.0 * 0.0 * e))
        assert RateCurve([(0.0, 1e12, rate, rate)]).next_arrival(t, e) == general


def test_constant_rate_segments_carry_the_rest_over_as_the_general_formula_does():
    """From one constant-rate segment into the next, the curve's area (r * (t1 - a)) and gap are the
    general formulas' (0.5 * (r + r) * (t1 - a); the root with slope 0) to the bit."""
    import math
    import random

    rng = random.Random(11)
    for _ in range(5_000):
        r1, r2 = 10.0 ** rng.uniform(-3.0, 4.0), 10.0 ** rng.uniform(-3.0, 4.0)
        t1 = rng.uniform(0.1, 10.0)
        t = rng.uniform(0.0, t1)
        e = rng.expovariate(1.0) * r1 * (t1 - t) * 2.0  # past the first segment about half the time
        area = 0.5 * (r1 + r1) * (t1 - t)
        if e <= area:
            expected = t + 2.0 * e / (r1 + math.sqrt(r1 * r1 + 2.0 * 0.0 * e))
        else:
            rest = e - area
            expected = t1 + 2.0 * rest / (r2 + math.sqrt(r2 * r2 + 2.0 * 0.0 * rest))
        assert RateCurve([(0.0, t1, r1, r1), (t1, 1e12, r2, r2)]).next_arrival(t, e) == expected


def test_a_fall_by_sub_is_add_of_the_negative_to_the_bit():
    """`Level.sub(now, d)` skips the peak test inside a bucket: every area, peak and sample is still
    `add(now, -d)`'s, ties and changes at a bucket's exact end included."""
    import random

    from spiralsim.metrics import Level

    rng = random.Random(5)
    for _ in range(300):
        a, b = Level(8, 0.5), Level(8, 0.5)
        t = 0.0
        for _ in range(60):
            step = rng.random()
            if step < 0.25:
                t = math.floor(t / 0.5 + 1.0) * 0.5  # a bucket's end, exactly
            elif step < 0.9:
                t += rng.expovariate(20.0)  # (else a tie: the same instant again)
            if t >= 4.0:
                break
            d = float(rng.randint(1, 3))
            if rng.random() < 0.5:
                a.add(t, d)
                b.add(t, d)
            else:
                a.add(t, -d)
                b.sub(t, d)
        a.close(4.0)
        b.close(4.0)
        assert (list(a.area), list(a.peak), list(a.sample)) == (list(b.area), list(b.peak), list(b.sample))
