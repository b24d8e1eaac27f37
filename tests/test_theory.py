"""Theory tests: the pool, made a textbook queue, against queueing formulas.

One service, one pod, no event-loop CPU, no client or balancer timeout, one
`query` endpoint whose statement is a pure wait of mean 1/mu (no database CPU),
`pool.max = c` with all c connections warm and no idle timeout: the pool is then
an M/M/c queue (M/D/c with `distribution = "deterministic"`), and with
`acquire_timeout = tau` an M/M/c+D queue (deterministic patience).

Every tolerance is statistical: the run after a warm-up is cut into batches,
the batch means give a standard error SE, and a test asserts
|simulated - theory| < 4 SE (a correct model fails that about once in 2,000 if
the 25 batch means are independent normals: Student t, 24 degrees of freedom;
the seeds are fixed, so a run is reproducible). Each test also asserts that
4 SE is under 10 % of the quantity (15 % for queue waits), so that it can tell
a wrong model.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import simpy

from spiralsim.model.world import World
from spiralsim.scenario import scenario_from_toml, textbook

Z = 4.0  # allowed |sim - theory| in standard errors
BATCHES = 25
BUCKET_S = 10.0


# --- formulas ----------------------------------------------------------------
def erlang_b(c: int, a: float) -> float:
    """Erlang B blocking probability for c servers and offered load a = lambda/mu (Erlangs)."""
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    return b


def erlang_c(c: int, a: float) -> float:
    """Erlang C: P(an arrival waits) in M/M/c with offered load a < c (Erlangs)."""
    b = erlang_b(c, a)
    rho = a / c
    return b / (1.0 - rho * (1.0 - b))


def mmc_wait(c: int, lam: float, mu: float) -> float:
    """Mean wait in queue (s) of M/M/c: C(c, a) / (c mu - lambda)."""
    return erlang_c(c, lam / mu) / (c * mu - lam)


def mmnd(n: int, lam: float, mu: float, tau: float) -> tuple[float, float]:
    """M/M/n+D (deterministic patience tau, s): (P(abandon), P(all n busy on arrival)).

    Derivation, from the virtual waiting time V (the wait an infinitely patient
    arrival would have, FCFS). With k < n busy nobody waits: p_k = p_0 a^k / k!,
    a = lambda/mu (birth-death balance lambda p_{k-1} = k mu p_k). With all n
    busy, departures come at rate theta = n mu, so V is a sum of Exp(theta)
    terms: an arrival in state n-1 starts V ~ Exp(theta); an arrival that sees
    V < tau will be served after exactly V (nobody ahead of it abandons: they
    all saw less than tau), so it joins and adds one Exp(theta); one that sees
    V >= tau would wait past tau, so it abandons and changes nothing (as a
    balking customer would); V falls at rate 1 and on reaching 0 a connection
    frees with nobody waiting (back to n-1). Level crossing at x > 0 for the
    density v of V (down-crossings = up-crossings):
        v(x) = lambda p_{n-1} e^{-theta x}
               + lambda * integral_0^{min(x, tau)} v(y) e^{-theta (x - y)} dy.
    For x <= tau differentiating gives v' = -(theta - lambda) v, so
    v(x) = lambda p_{n-1} e^{-(theta - lambda) x}; for x > tau,
    v(x) = v(tau) e^{-theta (x - tau)}. Normalising
        1 = sum_{k<n} p_k + lambda p_{n-1} [(1 - e^{-d tau}) / d + e^{-d tau} / theta],
    d = theta - lambda (the bracket's first term is tau when d = 0), and by
    PASTA P(abandon) = P(V >= tau) = lambda p_{n-1} e^{-d tau} / theta
    = rho p_{n-1} e^{-d tau}, rho = a / n; P(all busy) = 1 - sum_{k<n} p_k.
    tau = 0 gives Erlang B; tau -> inf (lambda < theta) gives Erlang C.
    """
    a = lam / mu
    theta = n * mu
    d = theta - lam
    terms = [1.0]
    for k in range(1, n):
        terms.append(terms[-1] * a / k)
    below = tau if abs(d) < 1e-12 else -math.expm1(-d * tau) / d
    norm = sum(terms) + terms[-1] * lam * (below + math.exp(-d * tau) / theta)
    p_last = terms[-1] / norm
    return (a / n) * p_last * math.exp(-d * tau), 1.0 - sum(terms) / norm


# --- statistics --------------------------------------------------------------
def batched(x: np.ndarray, warmup: int, batches: int = BATCHES) -> np.ndarray:
    """Sums of `x` over `batches` equal consecutive batches after dropping `warmup` items."""
    x = np.asarray(x, dtype=float)[warmup:]
    size = len(x) // batches
    return x[: size * batches].reshape(batches, size).sum(axis=1)


def ratio_estimate(num: np.ndarray, den: np.ndarray, warmup: int) -> tuple[float, float]:
    """sum(num)/sum(den) after the warm-up, and its batch-means standard error."""
    nb, db = batched(num, warmup), batched(den, warmup)
    r = nb / db
    return nb.sum() / db.sum(), r.std(ddof=1) / math.sqrt(len(r))


def mean_estimate(x: np.ndarray) -> tuple[float, float]:
    """Mean of per-batch values and its standard error."""
    return float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x)))


def assert_close(sim: float, se: float, theory: float, label: str, power: float = 0.1) -> None:
    """|sim - theory| < Z se, and Z se < power x theory (the test can tell a wrong model)."""
    print(f"{label}: sim {sim:.5g} theory {theory:.5g} diff {sim - theory:+.3g} tol {Z * se:.3g}")
    assert abs(sim - theory) < Z * se, f"{label}: sim {sim:.5g} vs theory {theory:.5g}, {Z} SE = {Z * se:.3g}"
    assert Z * se < power * abs(theory), f"{label}: {Z} SE = {Z * se:.3g} too wide to test {theory:.5g}"


# --- the pool as a textbook queue --------------------------------------------
def queue_toml(c: int, lam: float, mu: float, duration: float, seed: int,
               tau: float = 0.0, distribution: str = "exponential") -> str:
    """A scenario in which the pool is an M/M/c (or M/D/c, or M/M/c+D with tau > 0) queue."""
    return textbook.queue_toml(c, lam, mu, duration, seed, tau, distribution, BUCKET_S)


def bucket_seconds(cols: dict[str, np.ndarray]) -> np.ndarray:
    """Seconds covered by each bucket (the run lengths here are whole buckets)."""
    return np.full(len(cols["arrivals"]), BUCKET_S)


def run_queue(c: int, lam: float, mu: float, duration: float, seed: int, **kw) -> dict[str, np.ndarray]:
    """Run the textbook queue; the service's per-bucket columns."""
    rec = World(scenario_from_toml(queue_toml(c, lam, mu, duration, seed, **kw))).run()
    svc = rec.services["api"]
    cols = svc.cols
    # conservation: every arrival is answered or still open at the end
    assert cols["arrivals"].sum() == cols["completions"].sum() + svc.open_requests
    return cols


def test_formulas_agree_with_known_values() -> None:
    """The helpers themselves: Erlang C tables, M/M/1, and the M/M/n+D limits."""
    assert erlang_c(1, 0.7) == pytest.approx(0.7)
    assert erlang_c(10, 8.0) == pytest.approx(0.409, abs=5e-4)  # tables: 0.4092
    assert mmc_wait(1, 0.7, 1.0) == pytest.approx(0.7 / 0.3)
    for n, lam in [(1, 0.5), (10, 8.0), (10, 12.0)]:
        ab, busy = mmnd(n, lam, 1.0, 0.0)
        assert ab == pytest.approx(erlang_b(n, lam))
        assert busy == pytest.approx(erlang_b(n, lam))
    ab, busy = mmnd(10, 8.0, 1.0, 200.0)
    assert ab < 1e-12 and busy == pytest.approx(erlang_c(10, 8.0))
    # lambda = n mu: the d -> 0 limit is continuous
    assert mmnd(10, 10.0, 1.0, 0.5)[0] == pytest.approx(mmnd(10, 10.0 + 1e-7, 1.0, 0.5)[0], rel=1e-5)


@pytest.mark.parametrize("c, lam, duration, seed", [
    (10, 8.0, 40_200.0, 11),  # rho 0.8
    (10, 9.0, 60_200.0, 12),  # rho 0.9
])
def test_mmc_acquire_wait_matches_erlang_c(c: int, lam: float, duration: float, seed: int) -> None:
    """M/M/c: mean acquire wait Wq = C(c,a)/(c mu - lambda), P(wait) = C(c,a), and mean
    latency W = Wq + 1/mu, each within 4 batch-means SE (25 batches after 200 s)."""
    mu = 1.0
    cols = run_queue(c, lam, mu, duration, seed)
    warm = int(200 / BUCKET_S)
    wq, se = ratio_estimate(cols["acquire_wait_sum"], cols["acquires"], warm)
    assert_close(wq, se, mmc_wait(c, lam, mu), f"M/M/{c} rho={lam / c / mu:.2f} Wq (s)", power=0.15)
    pw, se = ratio_estimate(cols["queued"], cols["acquires"], warm)
    assert_close(pw, se, erlang_c(c, lam / mu), f"M/M/{c} rho={lam / c / mu:.2f} P(wait)")
    w, se = ratio_estimate(cols["latency_sum"], cols["completions"], warm)
    assert_close(w, se, mmc_wait(c, lam, mu) + 1.0 / mu, f"M/M/{c} rho={lam / c / mu:.2f} W (s)")
    # the pool's queue gauge: time-average waiting Lq = lambda Wq
    lq, se = mean_estimate(batched(cols["pool_waiting_area"], warm) / batched(bucket_seconds(cols), warm))
    assert_close(lq, se, lam * mmc_wait(c, lam, mu), f"M/M/{c} rho={lam / c / mu:.2f} Lq", power=0.15)


def test_mm1_latency() -> None:
    """M/M/1 at rho 0.7: mean latency W = 1/(mu - lambda), within 4 batch-means SE."""
    lam, mu = 0.7, 1.0
    cols = run_queue(1, lam, mu, 200_500.0, 21)
    w, se = ratio_estimate(cols["latency_sum"], cols["completions"], int(500 / BUCKET_S))
    assert_close(w, se, 1.0 / (mu - lam), "M/M/1 rho=0.7 W (s)")


def test_md1_latency_pollaczek_khinchine() -> None:
    """M/D/1 at rho 0.7 (deterministic statements): W = 1/mu + rho/(2 mu (1 - rho)), within 4 SE."""
    lam, mu = 0.7, 1.0
    cols = run_queue(1, lam, mu, 120_500.0, 22, distribution="deterministic")
    w, se = ratio_estimate(cols["latency_sum"], cols["completions"], int(500 / BUCKET_S))
    rho = lam / mu
    assert_close(w, se, 1.0 / mu + rho / (2.0 * mu * (1.0 - rho)), "M/D/1 rho=0.7 W (s)")


# --- M/M/n+D: the formula against an independent plain-SimPy model, then the pool ----
def plain_simpy_mmnd(n: int, lam: float, mu: float, tau: float, customers: int, seed: int) -> np.ndarray:
    """A minimal SimPy M/M/n+D: per customer (in arrival order), 1.0 if it abandoned."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1.0 / lam, customers)
    service = rng.exponential(1.0 / mu, customers)
    abandoned = np.zeros(customers)
    env = simpy.Environment()
    servers = simpy.Resource(env, capacity=n)

    def customer(i: int):
        with servers.request() as req:
            got = yield req | env.timeout(tau)
            if req not in got:
                abandoned[i] = 1.0
                return
            yield env.timeout(service[i])

    def arrivals():
        for i in range(customers):
            yield env.timeout(gaps[i])
            env.process(customer(i))

    env.process(arrivals())
    env.run()
    return abandoned


@pytest.mark.parametrize("n, lam, tau, customers", [(10, 9.5, 0.3, 200_000), (10, 11.0, 1.0, 150_000)])
def test_mmnd_formula_matches_plain_simpy(n: int, lam: float, tau: float, customers: int) -> None:
    """The M/M/n+D abandonment formula against an independent process-per-customer
    SimPy model (25 batches of customers after the first 2,000), within 4 SE."""
    abandoned = plain_simpy_mmnd(n, lam, 1.0, tau, customers + 2_000, seed=5)
    sim, se = mean_estimate(batched(abandoned, 2_000) / (customers // BATCHES))
    assert_close(sim, se, mmnd(n, lam, 1.0, tau)[0], f"plain SimPy M/M/{n}+D lam={lam} tau={tau} P(abandon)")


@pytest.mark.parametrize("n, lam, tau, duration, seed", [
    (10, 9.5, 0.3, 15_200.0, 31),   # rho 0.95, short patience
    (10, 11.0, 1.0, 30_200.0, 32),  # overloaded (rho 1.1): patience keeps it stable
])
def test_pool_acquire_timeout_matches_mmnd(n: int, lam: float, tau: float, duration: float, seed: int) -> None:
    """pool acquire_timeout = tau: share of requests failing acquire_timeout = P(abandon) of
    M/M/n+D, and share queued = P(all busy), each within 4 batch-means SE."""
    cols = run_queue(n, lam, 1.0, duration, seed, tau=tau)
    warm = int(200 / BUCKET_S)
    p_abandon, p_busy = mmnd(n, lam, 1.0, tau)
    ab, se = ratio_estimate(cols["failures_acquire_timeout"], cols["arrivals"], warm)
    assert_close(ab, se, p_abandon, f"pool M/M/{n}+D lam={lam} tau={tau} P(abandon)")
    q, se = ratio_estimate(cols["queued"], cols["acquires"], warm)
    assert_close(q, se, p_busy, f"pool M/M/{n}+D lam={lam} tau={tau} P(queued)", power=0.05)
    # only acquire timeouts fail here
    others = sum(v.sum() for k, v in cols.items() if k.startswith("failures_") and k != "failures_acquire_timeout")
    assert others == 0


# --- Little's law on a stochastic, non-textbook scenario ----------------------
LITTLE_TOML = """
name = "little"
duration = 1100
seed = 41
bucket = "5s"

[database]
max_connections = 50
cores = 2
connect_time = "20ms"
connect_cpu = 0  # a connect takes exactly connect_time: the pool's Little's law below counts on it
refused_connect_cpu = 0
accept_rate = 0

[services.api.traffic]
rate = 80

[services.api.endpoints.get]
weight = 3
kind = "query"
statements = 2
statement_cpu = "5ms"
statement_wait = "20ms"
distribution = "lognormal"
sigma = 1.2

[services.api.endpoints.update]
weight = 1
kind = "transaction"
statements = 3
think = "10ms"
statement_cpu = "5ms"
statement_wait = "20ms"
distribution = "exponential"

[services.api.client]
timeout = 0

[services.api.balancer]
upstream_timeout = 0
policy = "round_robin"

[services.api.pod]
replicas = 2
cpu_per_request = "2ms"

[services.api.pool]
max = 4
idle_timeout = "1s"
max_uses = 200
"""


def test_littles_law() -> None:
    """Little's law, L = lambda W, on two pods with event-loop CPU, a processor-sharing
    database, lognormal and exponential statements, transactions with think time and
    connections that wear out (max_uses) and reopen: time-average attempts in flight
    (inflight_area / T) against the arrival rate x mean latency; and the pool's queue
    against the acquire rate x mean acquire wait. Batch means (25 batches after 100 s), within 4 SE."""
    rec = World(scenario_from_toml(LITTLE_TOML)).run()
    cols = rec.services["api"].cols
    warm = int(100 / rec.bucket)
    t = batched(rec.bucket_len, warm)
    lam = 80.0
    lat = batched(cols["latency_sum"], warm) / batched(cols["completions"], warm)
    inflight = batched(cols["inflight_area"], warm) / t
    # the scenario is stochastic enough to test anything: connections do churn and requests queue
    assert cols["connects"].sum() > 100 and cols["queued"].sum() > 1000
    _, se = mean_estimate(inflight - lam * lat)
    W, _ = ratio_estimate(cols["latency_sum"], cols["completions"], warm)
    assert_close(float(inflight.mean()), se, lam * W, "Little L = lambda W (inflight)")
    # with the measured arrival rate the identity is tight (edge effects only)
    arr = batched(cols["arrivals"], warm) / t
    _, se2 = mean_estimate(inflight - arr * lat)
    assert_close(float(inflight.mean()), se2, float((arr * lat).mean()), "Little L = lambda_hat W")
    # The pool: an acquire's wait is its time queued (pg_pool_waiting counts those callers)
    # plus, for a caller that gets a new connection, the connect time (pg-pool does not count
    # a caller whose connection is being opened as waiting). So Little's law reads
    # mean waiting + connect rate x connect_time = acquire rate x mean acquire wait.
    lq = batched(cols["pool_waiting_area"], warm) / t
    opening = batched(cols["connects"], warm) / t * 0.020  # connect_time = "20ms" above
    acq = batched(cols["acquires"], warm) / t
    wq = batched(cols["acquire_wait_sum"], warm) / batched(cols["acquires"], warm)
    _, se3 = mean_estimate(lq + opening - acq * wq)
    assert_close(float((lq + opening).mean()), se3, float((acq * wq).mean()),
                 "Little Lq + connecting = acquires rate x Wq")


# --- longer checks ------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("c, lam, duration, seed", [
    (10, 9.5, 200_400.0, 13),  # rho 0.95: slow mixing, long run
    (20, 16.0, 60_200.0, 14),
])
def test_mmc_erlang_c_long(c: int, lam: float, duration: float, seed: int) -> None:
    """M/M/c near saturation and a larger pool: Wq and P(wait) within 4 batch-means SE."""
    cols = run_queue(c, lam, 1.0, duration, seed)
    warm = int(400 / BUCKET_S)
    wq, se = ratio_estimate(cols["acquire_wait_sum"], cols["acquires"], warm)
    assert_close(wq, se, mmc_wait(c, lam, 1.0), f"M/M/{c} rho={lam / c:.2f} Wq (s)", power=0.15)
    pw, se = ratio_estimate(cols["queued"], cols["acquires"], warm)
    assert_close(pw, se, erlang_c(c, lam), f"M/M/{c} rho={lam / c:.2f} P(wait)")


@pytest.mark.slow
@pytest.mark.parametrize("n, lam, tau", [(10, 10.0, 0.5), (5, 6.0, 1.0)])
def test_pool_acquire_timeout_matches_mmnd_long(n: int, lam: float, tau: float) -> None:
    """More M/M/n+D points (lambda = n mu exactly; a small pool with long patience),
    cross-checked by plain SimPy and then against the pool, within 4 SE."""
    p_abandon, _ = mmnd(n, lam, 1.0, tau)
    abandoned = plain_simpy_mmnd(n, lam, 1.0, tau, 202_000, seed=6)
    sim, se = mean_estimate(batched(abandoned, 2_000) / (200_000 // BATCHES))
    assert_close(sim, se, p_abandon, f"plain SimPy M/M/{n}+D lam={lam} tau={tau} P(abandon)")
    cols = run_queue(n, lam, 1.0, 40_200.0, 33, tau=tau)
    ab, se = ratio_estimate(cols["failures_acquire_timeout"], cols["arrivals"], int(200 / BUCKET_S))
    assert_close(ab, se, p_abandon, f"pool M/M/{n}+D lam={lam} tau={tau} P(abandon)")
