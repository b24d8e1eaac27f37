"""Node's event loop in a pod: results, releases and timers wait for it; its lag is a gauge.

Tiny deterministic cases are exact; the theory tests compare the sampled lag with the
M/M/1 and M/D/1 waiting times, with tolerances from batch means (±4 standard errors).
"""
from __future__ import annotations

import math
import random

import numpy as np
import pytest
import simpy
from builders import TEXTBOOK, scenario

from spiralsim.analysis.timeseries import build_timeseries
from spiralsim.metrics import Recorder
from spiralsim.model.event_loop import LAG_SAMPLE_S, EventLoop, LagSampler
from spiralsim.model.timer import Timer
from spiralsim.model.world import World


def run(*sets: str, **changes):
    s = scenario(TEXTBOOK, *sets, **changes)
    rec = World(s).run()
    return s, rec


def test_an_acquire_timeout_fires_when_the_loop_gets_to_it():
    # One connection, held 10 s by request 0. Each request takes 2 s of the loop's CPU, and all
    # 40 are booked by 5 s: request k asks for the connection when its CPU ends, at
    # 0.125 + 2 (k + 1), with a 1 s acquire timeout, but the loop is busy until
    # 0.125 + 40 x 2 = 80.125 s: the timeouts of requests 1 to 38 all fire then (request 0's
    # result, queued at 12.125 s, hands its connection to request 5 on the way). Request 39
    # asks at 80.125 s itself and waits its whole second on an idle loop.
    s, rec = run("services.api.endpoints.q.statement_wait=10s", "services.api.pod.cpu_per_request=2s",
                 "services.api.pool.acquire_timeout=1s", duration="100s")
    c = rec.services["api"].cols
    assert c["successes"].sum() == 2  # requests 0 and 5
    assert c["failures_acquire_timeout"].sum() == 38
    asked = [0.125 + 2 * (k + 1) for k in range(1, 39)]
    assert c["acquire_wait_sum"].sum() == pytest.approx(sum(80.125 - t for t in asked) + 1.0)


def test_a_busy_loop_holds_its_connection_until_it_handles_the_result():
    # Three requests (0.125, 0.25, 0.375 s) of 1 s CPU each, one connection. Request 0's statement
    # ends at 1.625 s, but the loop is booked with requests 1 and 2 until 3.125 s: the connection
    # is released then. Request 1 (waiting since 2.125 s) gets it at 3.125 s, and request 2
    # (waiting since 3.125 s) at 3.625 s, when request 1's result comes back to an idle loop.
    # Without the loop (results handled at once) nobody would wait.
    s, rec = run("services.api.endpoints.q.statement_wait=500ms", "services.api.pod.cpu_per_request=1s",
                 "services.api.traffic.phases.0.start=0.4s", duration="30s")
    c = rec.services["api"].cols
    assert c["successes"].sum() == 3
    assert c["acquire_wait_sum"].sum() == pytest.approx((3.125 - 2.125) + (3.625 - 3.125))


def test_result_cpu_is_event_loop_cpu():
    s, rec = run("services.api.endpoints.q.statement_wait=1ms", "services.api.pod.query_result_cpu=10ms",
                 "services.api.endpoints.q.statements=3")
    c = rec.services["api"].cols
    assert c["successes"].sum() == 40
    assert c["cpu_busy"].sum() == pytest.approx(40 * 3 * 0.01)


def test_a_crash_drops_the_work_its_loop_had_not_run():
    env = simpy.Environment()
    busy = Recorder(10.0, 1.0, ["api"], 100).services["api"].cpu_busy
    loop = EventLoop(env, busy, 1.0, 1.0)
    assert loop.later(3.0) == 3.0 and loop.later(0.0) == 3.0  # a timer due now runs after the booked work
    env.run(until=1.0)
    assert loop.lag(1.0) == 2.0
    loop.restart()
    assert loop.lag(1.0) == 0.0 and loop.busy_until(1.0) == pytest.approx(1.0)
    assert sum(busy) == pytest.approx(1.0)  # the 2 s never run are taken back from the CPU series


def _batch_bounds(values: np.ndarray, batches: int) -> tuple[float, float]:
    """Mean and 4 standard errors of the means of `batches` consecutive batches."""
    means = np.array([b.mean() for b in np.array_split(values, batches)])
    return float(means.mean()), 4 * float(means.std(ddof=1)) / math.sqrt(batches)


def test_loop_lag_is_the_mm1_waiting_time():
    # Poisson arrivals of exponential work on one loop at rho = 0.7: the lag a timer sees (the
    # work left, sampled every 0.1 s) averages the M/M/1 waiting time rho / (mu - lambda).
    lam, mu, duration = 700.0, 1000.0, 600.0
    env = simpy.Environment()
    rec = Recorder(duration, 1.0, ["api"], 100)
    series = rec.services["api"]
    loop = EventLoop(env, series.cpu_busy, 1.0, 1.0)
    rng = random.Random(11)

    def arrive(timer: Timer) -> None:
        loop.later(rng.expovariate(mu))
        Timer(env, rng.expovariate(lam), arrive)

    Timer(env, rng.expovariate(lam), arrive)
    LagSampler(env, loop.busy, lambda: 1.0, series, 1.0)  # one pod, always running
    env.run(until=duration)
    n = int(duration)
    lag = np.array(series.loop_lag_sum[10:n]) / np.array(series.loop_lag_samples[10:n])
    mean, tol = _batch_bounds(lag, 25)
    theory = (lam / mu) / (mu - lam)
    assert abs(mean - theory) < tol, (mean, theory, tol)
    assert tol < 0.15 * theory  # the test can tell a wrong formula (M/D/1 would be half)


def test_a_pods_loop_lag_is_the_md1_waiting_time():
    # The whole model: one pod, 5 ms of CPU per request (deterministic), Poisson arrivals at
    # 100/s (rho 0.5), queries that take no time: the Pollaczek-Khinchine waiting time
    # rho / (2 mu (1 - rho)) = 2.5 ms. Results cost nothing, so they only wait.
    s = scenario(TEXTBOOK, "services.api.pod.cpu_per_request=5ms", "services.api.traffic.rate=100",
                 "services.api.traffic.phases.0.start=2000s", "services.api.pool.max=50",
                 duration="2000s", services={"api": {"traffic": {"arrivals": None}}})
    rec = World(s).run()
    lag = build_timeseries(rec)["event_loop_lag_ms"][10:] / 1000  # (one service: one row per bucket)
    mean, tol = _batch_bounds(lag, 25)
    rho, mu = 0.5, 200.0
    theory = rho / (2 * mu * (1 - rho))
    assert abs(mean - theory) < tol, (mean, theory, tol)
    assert LAG_SAMPLE_S * 10 == pytest.approx(s.bucket)  # ten samples a bucket
