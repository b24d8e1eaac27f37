"""The caller of a service: a per-attempt timeout, retries with backoff and jitter, and
its defences (a retry budget, a circuit breaker, adaptive throttling), each off by default.

One logical request ends in exactly one outcome (success, or the kind of its
last error); attempts are counted apart, and so are attempts refused at once
(breaker open, throttled, shed), even when a retry later succeeds. A timed-out
attempt goes on server side (node does not cancel work whose caller left) and
is counted as wasted when it finishes.
"""
from __future__ import annotations

import math

from simpy import Environment

from ..metrics import Recorder, ServiceSeries
from ..scenario import ClientConfig
from ..vocabulary import FAILURE_KINDS, KIND_INDEX, REFUSED_AT_ONCE
from .breaker import STATE_NAMES, Breaker
from .deadlines import DeadlineQueue
from .request import Attempt, Request
from .retry_budget import RetryBudget
from .rng import Draws
from .throttle import Throttle
from .timer import Timer

#: Answers that mean the backend accepted the attempt (it did the work), for throttling.
ACCEPTED = frozenset((None, "statement_error", "transient_error"))


class Client:
    """All callers of one service, sharing its client settings."""

    def __init__(self, env: Environment, config: ClientConfig, upstream_timeout: float, series: ServiceSeries,
                 recorder: Recorder, service: str, jitter: Draws, slow_after: float = float("inf"),
                 throttle_draws: Draws | None = None):
        """`slow_after`: a success that took longer (seconds) is counted as slow (the impact's latency threshold)."""
        self.env = env
        self.slow_after = slow_after
        self.series = series
        self.recorder = recorder
        self.service = service
        self.inv_bucket = recorder.inv_bucket
        self.timeout = config.timeout
        self.max_attempts = config.max_attempts
        self.retry_on = frozenset(config.retry_on)
        self.backoff = config.backoff
        self.backoff_base = config.backoff_base
        self.backoff_cap = config.backoff_cap
        self.jitter = config.jitter
        self.jitter_draws = jitter
        # The balancer's 504 matters only when it comes before the client gives up.
        self.upstream_timeout = upstream_timeout if upstream_timeout > 0 and (
            self.timeout <= 0 or upstream_timeout < self.timeout) else 0.0
        self.budget = RetryBudget(config.retry_budget) if config.retry_budget > 0 else None
        self.breaker = Breaker(config.breaker_error_rate, config.breaker_window, config.breaker_min_requests,
                               config.breaker_open, series.breaker_state, self._breaker_changed
                               ) if config.circuit_breaker else None
        self.throttle = Throttle(config.throttle_k, config.throttle_window, throttle_draws
                                 ) if config.throttle_k > 0 else None
        self.refused_at_once = {k: getattr(series, "attempts_" + k) for k in REFUSED_AT_ONCE}
        self.learns = self.budget is not None or self.breaker is not None or self.throttle is not None
        # One ordered queue per timeout length, answered attempts dropped at once (see deadlines.py).
        self.timeouts = DeadlineQueue(env, self.timeout, self._on_timeout) if self.timeout > 0 else None
        self.upstream = (DeadlineQueue(env, self.upstream_timeout, self._on_upstream_timeout)
                         if self.upstream_timeout > 0 else None)
        self.route = None  # set by the world: balancer.route(attempt)
        self.attempt_seq = 0

    @property
    def open_requests(self) -> int:
        """Requests that have arrived and not ended: the `requests_open` gauge's value (a sum of ones, exact)."""
        return int(self.series.requests_open.value)

    def request(self, req: Request) -> None:
        """A new user request arrives."""
        now = self.env._now
        b = int(now * self.inv_bucket)
        self.series.requests_open.add(now, 1.0)
        self.series.arrivals[b] += 1.0
        self._attempt(req, now, b)

    def _attempt(self, req: Request, now: float, b: int) -> None:
        """An attempt of `req` now (`b`: the bucket of `now`)."""
        req.attempts += 1
        if req.attempts > 1:  # (attempts: arrivals and retries, summed by the recorder)
            self.series.retries[b] += 1.0
        self.attempt_seq += 1
        att = Attempt(req, self.attempt_seq)
        if self.breaker is not None:
            go = self.breaker.allow(now)
            att.trial = go == 2
            if go == 0:
                self.respond(att, "circuit_open")
                return
        if self.throttle is not None and self.throttle.reject(now):
            self.respond(att, "throttled")
            return
        if self.timeouts is not None:
            self.timeouts.add(att.seq, att)
        if self.upstream is not None:
            self.upstream.add(att.seq, att)
        self.route(att)

    def _retry(self, timer: Timer) -> None:
        now = self.env._now
        self._attempt(timer.arg, now, int(now * self.inv_bucket))

    def respond(self, att: Attempt, error: str | None) -> None:
        """The server side of an attempt ended (error kind or None for success)."""
        if att.answered:
            self.series.wasted[int(self.env._now * self.inv_bucket)] += 1
            return
        if self.timeouts is not None:
            self.timeouts.cancel(att.seq)
        if self.upstream is not None:
            self.upstream.cancel(att.seq)
        if self.learns or error is not None:
            self._answered(att, error)
        else:  # a success, and no defence to tell: the common case, kept short
            att.answered = True
            self._outcome(att.req, None)

    def _on_timeout(self, att: Attempt) -> None:
        if not att.answered:
            if self.upstream is not None:
                self.upstream.cancel(att.seq)
            self._answered(att, "client_timeout")

    def _on_upstream_timeout(self, att: Attempt) -> None:
        if not att.answered:
            if self.timeouts is not None:
                self.timeouts.cancel(att.seq)
            self._answered(att, "upstream_timeout")

    def _answered(self, att: Attempt, error: str | None) -> None:
        """The client has its answer to an attempt: the defences learn from it, then the request goes on."""
        att.answered = True
        now = self.env._now
        if error is not None and error in self.refused_at_once:
            self.refused_at_once[error][int(now * self.inv_bucket)] += 1
        if self.breaker is not None:
            self.breaker.record(now, error, att.trial)
        if self.throttle is not None and error in ACCEPTED:
            self.throttle.accepted(now)
        if error is None and self.budget is not None:
            self.budget.success()
        self._outcome(att.req, error)

    def _may_retry(self, req: Request, error: str) -> bool:
        if error not in self.retry_on or req.attempts >= self.max_attempts:
            return False
        if self.budget is not None and not self.budget.allow():
            self.series.retries_denied[int(self.env._now * self.inv_bucket)] += 1
            return False
        return True

    def _outcome(self, req: Request, error: str | None) -> None:
        now = self.env._now
        b = int(now * self.inv_bucket)
        series = self.series
        if error is None:
            series.successes[b] += 1.0
        elif self._may_retry(req, error):
            Timer(self.env, self._backoff(req), self._retry, req)
            return
        else:
            series.failures[KIND_INDEX[error]][b] += 1.0
            if error not in series.first_failure:
                series.first_failure.add(error)
                text = FAILURE_KINDS[KIND_INDEX[error]].text
                self.recorder.event(now, self.service, "first_failure", f"{error}: {text}")
        if req.done:
            raise AssertionError("a request ended twice")
        req.done = True
        series.requests_open.sub(now, 1.0)
        latency = now - req.t0  # (completions: successes and failures, summed by the recorder)
        series.latency_sum[b] += latency
        hist = series.latencies  # (binned into series.hist when a later bucket begins)
        if b != hist.bucket:
            hist.start(b)
        hist.pending.append(latency)
        if error is None and latency > self.slow_after:
            series.slow[b] += 1.0

    def _breaker_changed(self, now: float, state: int, why: str) -> None:
        name = STATE_NAMES[state]
        self.recorder.event(now, self.service, "breaker_" + name.replace("-", "_"),
                            f"the client's circuit breaker is {name}: {why}")

    def _backoff(self, req: Request) -> float:
        """Seconds before the next attempt (Brooker's formulas; `req.attempts` tries so far)."""
        if self.backoff == "none":
            return 0.0
        base, cap = self.backoff_base, self.backoff_cap
        if self.backoff == "random":  # exponential with mean `base`: "after a while", as queueing models retry
            return -base * math.log(1.0 - self.jitter_draws.next())
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
