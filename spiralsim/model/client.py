"""The caller of a service: a per-attempt timeout, retries with backoff and jitter.

One logical request ends in exactly one outcome (success, or the kind of its
last error); attempts are counted apart. A timed-out attempt goes on server
side (node does not cancel work whose caller left) and is counted as wasted
when it finishes.
"""
from __future__ import annotations

from simpy import Environment

from ..metrics import KIND_INDEX, ServiceSeries, hist_bin, HIST_BINS
from .rng import Draws
from .timer import Deadline, Timer

# Retried: timeouts and 5xx. A statement error is the app's 4xx/constraint case.
RETRYABLE = frozenset({
    "acquire_timeout", "connect_timeout", "too_many_clients", "client_timeout",
    "upstream_timeout", "no_ready_pod", "pod_crashed", "statement_timeout",
    "connection_terminated", "shed",
})


ERROR_TEXT = {
    "acquire_timeout": "Error: timeout exceeded when trying to connect",
    "connect_timeout": "Error: Connection terminated due to connection timeout",
    "too_many_clients": "FATAL 53300: the database refused a new connection",
    "client_timeout": "the client gave up waiting and will retry if it may",
    "upstream_timeout": "504 Gateway Timeout from the load balancer",
    "no_ready_pod": "503 Service Unavailable: no ready pod",
    "pod_crashed": "502 Bad Gateway: the pod crashed",
    "statement_timeout": "57014 canceling statement due to statement timeout",
    "statement_error": "the statement failed (bad input or a constraint)",
    "connection_terminated": "Connection terminated unexpectedly",
    "circuit_open": "the circuit breaker is open",
    "shed": "503 Service Unavailable: shed above max_inflight",
}


class Request:
    """One user request: its own work, drawn when it arrives, and its attempts."""

    __slots__ = ("t0", "endpoint", "work", "errors", "locks", "orphan", "attempts", "backoff_prev", "done")

    def __init__(self, t0: float, endpoint, work: list[float], errors: int, locks: int = 0, orphan: bool = False):
        self.t0 = t0
        self.endpoint = endpoint
        self.work = work
        self.errors = errors
        self.locks = locks
        self.orphan = orphan
        self.attempts = 0
        self.backoff_prev = 0.0
        self.done = False


class Attempt:
    """One try of a request through the balancer into a pod (`gen`: the pod's
    container generation when it got there; `pool`: the pool it asked)."""

    __slots__ = ("req", "seq", "pod", "gen", "pool", "conn", "stmt", "answered", "foreign", "risk_tx")

    def __init__(self, req: Request, seq: int):
        self.req = req
        self.seq = seq
        self.pod = None
        self.gen = 0
        self.pool = None
        self.conn = None
        self.stmt = 0
        self.answered = False
        self.foreign = False   # its transaction is someone else's open one
        self.risk_tx = None    # an open transaction holding this attempt's uncommitted writes


class Client:
    """All callers of one service, sharing its client settings."""

    def __init__(self, env: Environment, config, upstream_timeout: float, series: ServiceSeries,
                 recorder, service: str, jitter: Draws):
        self.env = env
        self.series = series
        self.recorder = recorder
        self.service = service
        self.inv_bucket = recorder.inv_bucket
        self.timeout = config.timeout
        self.max_attempts = config.max_attempts
        self.backoff = config.backoff
        self.backoff_base = config.backoff_base
        self.backoff_cap = config.backoff_cap
        self.jitter = config.jitter
        self.jitter_draws = jitter
        # The balancer's 504 matters only when it comes before the client gives up.
        self.upstream_timeout = upstream_timeout if upstream_timeout > 0 and (
            self.timeout <= 0 or upstream_timeout < self.timeout) else 0.0
        self.route = None  # set by the world: balancer.route(attempt)
        self.open_requests = 0
        self.attempt_seq = 0

    def request(self, req: Request) -> None:
        """A new user request arrives."""
        self.open_requests += 1
        now = self.env.now
        self.series.requests_open.add(now, 1.0)
        self.series.arrivals[int(now * self.inv_bucket)] += 1
        self._attempt(req)

    def _attempt(self, req: Request) -> None:
        req.attempts += 1
        b = int(self.env.now * self.inv_bucket)
        series = self.series
        series.attempts[b] += 1
        if req.attempts > 1:
            series.retries[b] += 1
        self.attempt_seq += 1
        att = Attempt(req, self.attempt_seq)
        if self.timeout > 0:
            Deadline(self.env, self.timeout, self._on_timeout, att)
        if self.upstream_timeout > 0:
            Deadline(self.env, self.upstream_timeout, self._on_upstream_timeout, att)
        self.route(att)

    def _retry(self, timer: Timer) -> None:
        self._attempt(timer.arg)

    def respond(self, att: Attempt, error: str | None) -> None:
        """The server side of an attempt ended (error kind or None for success)."""
        if att.answered:
            self.series.wasted[int(self.env.now * self.inv_bucket)] += 1
            return
        att.answered = True
        self._outcome(att.req, error)

    def _on_timeout(self, timer: Timer) -> None:
        att: Attempt = timer.arg
        if not att.answered:
            att.answered = True
            self._outcome(att.req, "client_timeout")

    def _on_upstream_timeout(self, timer: Timer) -> None:
        att: Attempt = timer.arg
        if not att.answered:
            att.answered = True
            self._outcome(att.req, "upstream_timeout")

    def _outcome(self, req: Request, error: str | None) -> None:
        now = self.env.now
        b = int(now * self.inv_bucket)
        series = self.series
        if error is None:
            series.successes[b] += 1
        elif error in RETRYABLE and req.attempts < self.max_attempts:
            Timer(self.env, self._backoff(req), self._retry, req)
            return
        else:
            series.failures[KIND_INDEX[error]][b] += 1
            if error not in series.first_failure:
                series.first_failure.add(error)
                self.recorder.event(now, self.service, "first_failure", f"{error}: {ERROR_TEXT[error]}")
        if req.done:
            raise AssertionError("a request ended twice")
        req.done = True
        self.open_requests -= 1
        series.requests_open.add(now, -1.0)
        latency = now - req.t0
        series.completions[b] += 1
        series.latency_sum[b] += latency
        series.hist[b * HIST_BINS + hist_bin(latency)] += 1

    def _backoff(self, req: Request) -> float:
        """Seconds before the next attempt (Brooker's formulas; `req.attempts` tries so far)."""
        if self.backoff == "none":
            return 0.0
        base, cap = self.backoff_base, self.backoff_cap
        expo = min(cap, base * 2.0 ** (req.attempts - 1))
        jitter = self.jitter
        if jitter == "none":
            return expo
        if jitter == "full":
            return self.jitter_draws.next() * expo
        if jitter == "equal":
            return expo / 2 + self.jitter_draws.next() * expo / 2
        prev = req.backoff_prev or base  # decorrelated
        sleep = min(cap, base + self.jitter_draws.next() * (prev * 3 - base))
        req.backoff_prev = sleep
        return sleep
