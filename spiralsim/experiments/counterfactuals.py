"""The article's defences as counterfactuals: for a scenario, each single change that
applies to it, as `--set` overrides. One registry: a later defence joins by one entry.

A counterfactual applies when the scenario lacks the defence (retries without a
cap, an acquire timeout of forever, a handler without try/finally, ...) and has
what it defends against (statements that can run long for a statement timeout,
transactions for the idle-in-transaction timeout, sessions the server can end
for an error listener); it returns the overrides that add it, to every service
that lacks it, or None.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

from ..analysis import arithmetic
from ..scenario import Scenario, ServiceConfig
from ..scenario.durations import format_duration
from ..vocabulary import SIGNALS

Overrides = Optional[list[str]]


@dataclass(frozen=True)
class Counterfactual:
    """One defence: its name, the article's advice in a sentence, and the overrides that
    add it to a scenario (None when it does not apply)."""

    name: str
    advice: str
    overrides: Callable[[Scenario], Overrides]

    @property
    def key(self) -> str:
        """Its name as a variant name and a folder name: `no_retries`, `pool_max_by_the_arithmetic`."""
        return "".join(c if c.isalnum() else "_" for c in self.name.lower()).strip("_").replace("__", "_")


def _each(scenario: Scenario, wants: Callable[..., bool], sets: Callable[..., list[str]]) -> Overrides:
    out = [f"services.{name}.{s}" for name, svc in scenario.services.items() if wants(svc) for s in sets(svc)]
    return out or None


def _no_retries(sc: Scenario) -> Overrides:
    return _each(sc, lambda s: s.client.max_attempts > 1, lambda s: ["client.max_attempts=1"])


def _backoff(sc: Scenario) -> Overrides:
    return _each(sc, lambda s: s.client.max_attempts > 1 and (s.client.backoff == "none" or s.client.jitter == "none"),
                 lambda s: ['client.backoff="exponential"', 'client.jitter="full"'])


def _retry_budget(sc: Scenario) -> Overrides:
    return _each(sc, lambda s: s.client.max_attempts > 1 and s.client.retry_budget == 0,
                 lambda s: ["client.retry_budget=0.1"])


def _breaker(sc: Scenario) -> Overrides:
    return _each(sc, lambda s: s.client.max_attempts > 1 and not s.client.circuit_breaker,
                 lambda s: ["client.circuit_breaker=true"])


def _throttling(sc: Scenario) -> Overrides:
    return _each(sc, lambda s: s.client.max_attempts > 1 and s.client.throttle_k == 0,
                 lambda s: ["client.throttle_k=2"])


def _adaptive_limit(sc: Scenario) -> Overrides:
    return _each(sc, lambda s: s.pod.max_inflight == 0 and not s.pod.adaptive_concurrency and s.serverless is None,
                 lambda s: ["pod.adaptive_concurrency=true"])


def _release_dead_clients(sc: Scenario) -> Overrides:
    if not _sessions_end(sc):
        return None
    return _each(sc, lambda s: _transactions_in(s) and not s.pod.release_on_client_error,
                 lambda s: ["pod.crash_on_client_error=false", "pod.release_on_client_error=true"])


def _transactions_in(svc: ServiceConfig) -> bool:
    return any(e.kind == "transaction" for e in svc.endpoints.values())


def _pgbouncer(sc: Scenario) -> Overrides:
    """Transaction pooling, each service's server pool its fair share of 80 % of max_connections,
    and room for every client connection its pods can open."""
    if arithmetic(sc).verdict == "holds":
        return None
    out = []
    for name, share in _fair_share(sc).items():
        svc, limits = sc.services[name], arithmetic(sc).services[name]
        if svc.pgbouncer is None:
            out += [f'services.{name}.pgbouncer.pool_mode="transaction"',
                    f"services.{name}.pgbouncer.default_pool_size={max(1, math.floor(share))}",
                    f"services.{name}.pgbouncer.max_client_conn={max(100, limits.pods * svc.pool.max)}"]
    return out or None


def acquire_timeout_for(svc: ServiceConfig) -> float:
    """The article's acquire timeout: 2 s, but less than the caller's timeout "with room to
    spare" (half of it), so what the pool serves is still wanted."""
    return min(2.0, svc.client.timeout / 2) if svc.client.timeout > 0 else 2.0


def _acquire_timeout(sc: Scenario) -> Overrides:
    return _each(sc, lambda s: s.pool.acquire_timeout == 0 or s.pool.acquire_timeout > acquire_timeout_for(s),
                 lambda s: [f'pool.acquire_timeout="{format_duration(acquire_timeout_for(s))}"'])


def _scale_on_cpu(sc: Scenario) -> Overrides:
    # several metrics: cpu in their list, in place of the others
    return _each(sc, lambda s: s.autoscaler is not None and not any(SIGNALS[m.signal].resource
                                                                  for m in s.autoscaler.specs),
                 lambda s: (['autoscaler.metrics=[{ signal = "cpu", target = 0.7 }]'] if s.autoscaler.metrics
                            else ['autoscaler.signal="cpu"', "autoscaler.target=0.7"]))


def _shed(sc: Scenario) -> Overrides:
    # a serverless instance serves one request at a time: nothing to shed
    return _each(sc, lambda s: s.pod.max_inflight == 0 and s.serverless is None,
                 lambda s: [f"pod.max_inflight={5 * s.pool.max}"])


def _try_finally(sc: Scenario) -> Overrides:
    return _each(sc, lambda s: any(e.leak_on_error for e in s.endpoints.values()),
                 lambda s: [f"endpoints.{n}.leak_on_error=false" for n, e in s.endpoints.items() if e.leak_on_error]
                 + (["pod.leaked_at_start=0"] if s.pod.leaked_at_start else []))  # nor the leaks of its uptime


def _error_listener(sc: Scenario) -> Overrides:
    if not _sessions_end(sc):
        return None
    return _each(sc, lambda s: s.pod.crash_on_pool_error or s.pod.crash_on_client_error,
                 lambda s: ["pod.crash_on_pool_error=false", "pod.crash_on_client_error=false"])


def _database(key: str, value: str, relevant: Callable[[Scenario], bool]) -> Callable[[Scenario], Overrides]:
    def overrides(sc: Scenario) -> Overrides:
        return [f"database.{key}={value}"] if getattr(sc.database, key) == 0 and relevant(sc) else None
    return overrides


def _slow_statements(sc: Scenario) -> bool:
    """Statements can run long: a slow_queries incident, or lock waits."""
    return any(i.kind == "slow_queries" for i in sc.incidents) or any(
        e.lock_conflict > 0 for s in sc.services.values() for e in s.endpoints.values())


def _transactions(sc: Scenario) -> bool:
    return any(e.kind == "transaction" for s in sc.services.values() for e in s.endpoints.values())


def _sessions_end(sc: Scenario) -> bool:
    """The server can end sessions under the pods: a restart, a network drop, or its own timeout."""
    return (any(i.kind in ("db_restart", "network_blip") for i in sc.incidents)
            or sc.database.idle_in_transaction_session_timeout > 0)


def _fair_share(sc: Scenario) -> dict[str, float]:
    """Each service's share of the connections the alert share allows, in proportion to what it asks for."""
    arith = arithmetic(sc)
    room = max(0.0, arith.alert_limit - arith.other)
    asked = {n: s.asks for n, s in arith.services.items()}  # behind PgBouncer: its server pool
    total = sum(asked.values()) or 1
    return {n: room * asked[n] / total for n in asked}


def _pool_by_arithmetic(sc: Scenario) -> Overrides:
    if arithmetic(sc).verdict == "holds":
        return None
    out = []
    for name, share in _fair_share(sc).items():
        svc, pods = sc.services[name], arithmetic(sc).services[name].pods
        if svc.pgbouncer is not None:  # its pools talk to PgBouncer: its server pool is what counts
            continue
        size = max(1, math.floor(share / pods))
        if size < svc.pool.max:
            out += [f"services.{name}.pool.max={size}", f"services.{name}.pool.min={min(svc.pool.min, size)}",
                    f"services.{name}.pod.warm_connections={min(svc.pod.warm_connections, size)}"]
            if svc.pod.leaked_at_start > size:  # the same uptime's leaks fill the smaller pool
                out.append(f"services.{name}.pod.leaked_at_start={size}")
    return out or None


def _replicas_by_arithmetic(sc: Scenario) -> Overrides:
    if arithmetic(sc).verdict == "holds":
        return None
    out = []
    for name, share in _fair_share(sc).items():
        svc = sc.services[name]
        if svc.autoscaler is None or svc.pgbouncer is not None:
            continue
        pods = max(svc.autoscaler.min_replicas, math.floor(share / svc.pool.max))
        if pods < svc.autoscaler.max_replicas:
            out.append(f"services.{name}.autoscaler.max_replicas={pods}")
    return out or None


#: The article's defences, roughly in its order of priority.
COUNTERFACTUALS: tuple[Counterfactual, ...] = (
    Counterfactual("no retries", "cap retries: a request tries once", _no_retries),
    Counterfactual("backoff with jitter", "retry after an exponential backoff with full jitter", _backoff),
    Counterfactual("retry budget", "retry at most one request in ten successes (the SRE book's 10 % budget)",
                   _retry_budget),
    Counterfactual("circuit breaker", "a circuit breaker upstream of the pool (Hystrix's defaults: open at 50 %"
                   " errors over 10 s, 20 attempts at least; one trial after 5 s)", _breaker),
    Counterfactual("adaptive throttling", "the SRE book's client-side throttling, K = 2 over 2 minutes",
                   _throttling),
    Counterfactual("acquire timeout", "wait at most 2 s for a pool connection (connectionTimeoutMillis), and "
                   "less than the caller's timeout, with room to spare (half of it)", _acquire_timeout),
    Counterfactual("load shedding", "refuse work above 5 x pool.max in flight per pod (a 503 at once)", _shed),
    Counterfactual("adaptive concurrency limit", "an AIMD concurrency limit on each pod (Netflix"
                   " concurrency-limits' defaults: 20 to 200, x 0.9 on a drop)", _adaptive_limit),
    Counterfactual("statement_timeout 5 s", "cancel any statement after 5 s",
                   _database("statement_timeout", '"5s"', _slow_statements)),
    Counterfactual("idle_in_transaction_session_timeout 60 s",
                   "the server ends a session idle in transaction after 60 s",
                   _database("idle_in_transaction_session_timeout", '"60s"', _transactions)),
    Counterfactual("try/finally", "release the client in finally, ROLLBACK in catch (the withTransaction helper)",
                   _try_finally),
    Counterfactual("pool error listener", "pool.on('error') and client.on('error'): log, do not crash",
                   _error_listener),
    Counterfactual("release dead clients", "client.on('error', err => client.release(err)): the pool drops a"
                   " client the server ended and opens a new one", _release_dead_clients),
    Counterfactual("scale on CPU", "scale on CPU at 70 % instead of latency or a queue", _scale_on_cpu),
    Counterfactual("PgBouncer", "PgBouncer in transaction mode between the pods and the database, its server"
                   " pool sized to fit 80 % of max_connections", _pgbouncer),
    Counterfactual("pool.max by the arithmetic", "size each pool so pods x pool.max fits 80 % of max_connections",
                   _pool_by_arithmetic),
    Counterfactual("max_replicas by the arithmetic", "cap the autoscaler so pods x pool.max fits 80 % of "
                   "max_connections", _replicas_by_arithmetic),
)


def applicable(scenario: Scenario) -> list[tuple[Counterfactual, list[str]]]:
    """The counterfactuals that apply to `scenario`, with their overrides, in registry order."""
    found = []
    for cf in COUNTERFACTUALS:
        overrides = cf.overrides(scenario)
        if overrides:
            found.append((cf, overrides))
    return found
