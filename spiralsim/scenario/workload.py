"""The work a scenario asks for, known before it runs: the expected number of user requests.

A service's requests are the integral of its traffic rate over the run: the
base `rate`, each phase's `rate` inside [start, end), or a linear ramp from the
rate before (the base, or the previous phase's rate when it ends where this
one starts) when `ramp`; the same curve as the model's traffic. Exact
arithmetic (fractions), so `rate = 1e308` gives a huge number, not an overflow.
"""
from __future__ import annotations

from fractions import Fraction

from .errors import format_path
from .models import Scenario, TrafficConfig

__all__ = ["MAX_BUCKETS", "MAX_REQUESTS", "bucket_problem", "expected_requests", "requests_by_service",
           "workload_problem"]

#: The default limit of `workload_problem`: a shipped scenario asks for at most ~300 thousand.
MAX_REQUESTS = 50_000_000
#: The most buckets a run records: memory grows by about 2 kB a bucket and service (the
#: latency histograms), so 1e6 buckets is about 2 GB a service; a shipped scenario has at most 2,880.
MAX_BUCKETS = 1_000_000


def _integral(traffic: TrafficConfig, duration: float) -> Fraction:
    """The traffic's rate integrated over [0, duration], exactly."""
    base, end_of_run = Fraction(traffic.rate), Fraction(duration)
    total, t, before = Fraction(0), Fraction(0), base
    for phase in sorted(traffic.phases, key=lambda p: p.start):
        start, stop, rate = Fraction(phase.start), Fraction(phase.end), Fraction(phase.rate)
        if start >= end_of_run:
            break
        if start > t:
            total += base * (start - t)
            before = base
        end = min(stop, end_of_run)
        r0 = before if phase.ramp else rate
        r1 = before + (rate - before) * (end - start) / (stop - start) if phase.ramp else rate
        total += (r0 + r1) / 2 * (end - start)
        t, before = end, rate
    return total + base * (end_of_run - t) if t < end_of_run else total


def _float(x: Fraction) -> float:
    """x as a float; inf when it is beyond the largest float."""
    try:
        return float(x)
    except OverflowError:
        return float("inf")


def requests_by_service(scenario: Scenario) -> dict[str, float]:
    """Each service's expected number of user requests over the run (retries not counted)."""
    return {name: _float(_integral(svc.traffic, scenario.duration)) for name, svc in scenario.services.items()}


def expected_requests(scenario: Scenario) -> float:
    """The expected number of user requests of the whole run (retries not counted)."""
    return _float(sum((_integral(svc.traffic, scenario.duration) for svc in scenario.services.values()),
                      Fraction(0)))


def _about(n: float) -> str:
    """`about 3.2e+11`; `more than 1.8e+308` past the largest float."""
    return f"about {n:.2g}" if n != float("inf") else "more than 1.8e+308"


def workload_problem(scenario: Scenario, limit: float = MAX_REQUESTS) -> str | None:
    """One line naming the busiest service's traffic when the run asks for more than
    `limit` requests, or None: `services.api.traffic: about 3.2e+11 requests to simulate (limit 5e+07)`."""
    total = expected_requests(scenario)
    if total <= limit:
        return None
    by_service = requests_by_service(scenario)
    busiest = max(by_service, key=lambda name: by_service[name])
    whole = "" if len(by_service) == 1 else f"{_about(total)} in all, "
    return (f"{format_path(('services', busiest, 'traffic'))}: {_about(by_service[busiest])} requests"
            f" to simulate ({whole}limit {limit:g})")


def bucket_problem(scenario: Scenario, limit: float = MAX_BUCKETS) -> str | None:
    """One line when the run would record more than `limit` buckets (duration / bucket), or None."""
    buckets = _float(Fraction(scenario.duration) / Fraction(scenario.bucket))
    if buckets <= limit:
        return None
    return (f"bucket: {_about(buckets)} buckets to record (duration / bucket, limit {limit:g}); "
            f"set a longer bucket or a shorter duration")
