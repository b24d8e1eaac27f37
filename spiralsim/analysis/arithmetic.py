"""The arithmetic of a scenario, computed once from its settings alone (no run needed):
the connections its pools can ask for against what the database allows, and what
each service can serve against what it is offered.

The article's rule: pods x pool.max for every service, plus the database's other
users, stays within `db_connections_share` (0.8) of max_connections; the usable
slots (max_connections - superuser_reserved_connections) are the hard limit.
A service behind PgBouncer asks the database for PgBouncer's server pool
(`default_pool_size`, or its pods x pool.max client connections when fewer), not
for pods x pool.max: "the math problem disappears" (the article); whether its
clients then wait in PgBouncer is `spiralsim check`'s `pgbouncer_*` rules.
Capacity is first attempts per second, the least of three: the connections a
service can hold over the time a request holds one, its pods' event loops, and
its share of the database's cores. Read by the report, the console, the outcome
(`overloaded`) and `spiralsim check` (analysis/check.py), which says the same
numbers rule by rule.

Read replicas: each is a server of its own with the primary's settings, so the
rule holds for each apart: every service with a `reads` endpoint keeps a pool per
replica in each pod, and asks each replica for pods x pool.max (straight, PgBouncer
fronts the primary only), plus `other_connections`. A service's reads then hold
replica connections and use replica cores, its other endpoints the primary's.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from ..scenario import EndpointConfig, Scenario, ServiceConfig


@dataclass(frozen=True)
class ServiceLimits:
    """One service's share of the arithmetic; rates in first attempts per second."""

    name: str
    pods: int             # the most pods it can run (autoscaler max, or the largest replica count)
    pool_max: int
    connections: int      # the most it can hold: pods x pool.max, scaled down pro rata past the usable slots
    hold_s: float         # seconds a request holds a connection (statements, think time), mean over the mix
    offered: float        # req/s offered at the end of the run (base rate, or the phase covering the end)
    capacity: float       # req/s it can serve at most
    bottleneck: str       # which limit sets `capacity`: "connections", "pod CPU" or "database CPU"
    clients: int = 0      # pods x pool.max: the connections its pools can open (to PgBouncer, if any)
    asks: int = 0         # what it can ask the database for: `clients`, or PgBouncer's server pool if fewer
    pool_mode: str = ""   # PgBouncer's pool_mode ("session", "transaction"); "" connects directly

    def asking(self) -> str:
        """What it asks for: `12 pods x 10`, or `20 server connections through PgBouncer (for 12 pods x 10)`."""
        pods = f"{self.pods} pod{'' if self.pods == 1 else 's'} x {self.pool_max}"
        return f"{self.asks} server connections through PgBouncer (for {pods})" if self.pool_mode else pods

    def term(self, tick: str = "`") -> str:
        """Its part of the sum: `api` 12 pods x 10."""
        return f"{tick}{self.name}{tick} {self.asking()}"


@dataclass(frozen=True)
class Arithmetic:
    """The connection rule and each service's capacity."""

    services: dict[str, ServiceLimits]
    other: int            # connections held by users not modelled
    total: int            # sum of pods x pool.max, plus `other`: what the pools can ask for
    alert_share: float    # db_connections_share
    alert_limit: float    # alert_share x max_connections
    usable: int           # max_connections - superuser_reserved_connections
    replicas: int = 0     # read replicas, each with the primary's max_connections
    replica_total: int = 0  # what the pools can ask each replica for, plus `other`; 0 without replicas

    @property
    def replica_verdict(self) -> str:
        """The same rule for each read replica: `holds`, `tight` or `fails`; "" without replicas."""
        if not self.replicas:
            return ""
        if self.replica_total <= self.alert_limit:
            return "holds"
        return "tight" if self.replica_total <= self.usable else "fails"

    @property
    def verdict(self) -> str:
        """`holds` (within the alert share), `tight` (above it, within the usable slots) or `fails`."""
        if self.total <= self.alert_limit:
            return "holds"
        return "tight" if self.total <= self.usable else "fails"

    def equation(self, tick: str = "`") -> str:
        """The sum: `api` 12 pods x 10 + `reports` 5 pods x 10 = 170."""
        terms = [s.term(tick) for s in self.services.values()]
        if self.other:
            terms.append(f"{self.other} other connections")
        return f"{' + '.join(terms)} = {self.total}"

    def sentence(self) -> str:
        """The rule in one sentence, with this scenario's numbers."""
        head = f"{self.equation()} connections at most"
        limit = f"{self.alert_share:g} x max_connections = {self.alert_limit:g}"
        if self.verdict == "holds":
            return f"The arithmetic holds: {head}, within {limit}."
        if self.verdict == "tight":
            return (f"The arithmetic is tight: {head}, within the {self.usable} usable slots but above {limit}, "
                    f"where db_connections_high fires.")
        return f"The arithmetic fails: {head}, above the {self.usable} usable slots (and {limit})."


def max_pods(svc: ServiceConfig) -> int:
    """The most pods a service can run: its autoscaler's max, a serverless service's max_instances,
    or its largest replica count."""
    if svc.serverless is not None:
        return int(svc.serverless.max_instances)
    if svc.autoscaler is not None:
        return int(svc.autoscaler.max_replicas)
    return max([int(svc.pod.replicas)] + [int(s.replicas) for s in svc.pod.schedule])


def _per_request(svc: ServiceConfig, on_replica: bool = False) -> tuple[float, float]:
    """(connection seconds, database CPU seconds) of one request, mean over the endpoint mix: the part on
    the primary, or with `on_replica` the part of its `reads` endpoints (on the read replicas)."""
    total = sum(ep.weight for ep in svc.endpoints.values())
    cpu = 0.0
    mix = [ep for ep in svc.endpoints.values() if ep.reads == on_replica]
    for ep in mix:
        cpu += ep.weight / total * ep.statements * ep.statement_cpu
    return sum(ep.weight / total * hold_s(ep) for ep in mix), cpu


def mean_hold_s(svc: ServiceConfig, factors: Mapping[str, float] | None = None, cap: float = 0.0) -> float:
    """Seconds a request holds its connection, mean over the endpoint mix; `factors` slow some
    endpoints' statements down (a slow_queries incident), `cap` > 0 bounds each statement (statement_timeout)."""
    total = sum(ep.weight for ep in svc.endpoints.values())
    return sum(ep.weight / total * hold_s(ep, (factors or {}).get(name, 1.0), cap)
               for name, ep in svc.endpoints.items())


def hold_s(ep: EndpointConfig, factor: float = 1.0, cap: float = 0.0) -> float:
    """Seconds one request of `ep` holds its connection: its statements (x `factor`, each at most
    `cap` when > 0) and, in a transaction, the think time between them."""
    statement = (ep.statement_cpu + ep.statement_wait) * factor
    statements = ep.statements * (min(statement, cap) if cap > 0 else statement)
    return statements + (ep.statements - 1) * ep.think if ep.kind == "transaction" else statements


def reads(svc: ServiceConfig) -> bool:
    """Whether a service sends reads to the read replicas (then each pod keeps a pool per replica)."""
    return any(ep.reads for ep in svc.endpoints.values())


def asks(svc: ServiceConfig) -> int:
    """The connections a service can ask the database for: pods x pool.max, or through PgBouncer
    its server pool (`default_pool_size`) when that is fewer."""
    clients = max_pods(svc) * svc.pool.max
    return clients if svc.pgbouncer is None else min(clients, svc.pgbouncer.default_pool_size)


def _rate_at_end(svc: ServiceConfig, end: float) -> float:
    """The offered rate just before `end`: the phase covering it (its end rate for a ramp), else the base."""
    for ph in svc.traffic.phases:
        if ph.start < end <= ph.end:
            return ph.rate
    return svc.traffic.rate


def _served(cores: float, cpu: float, demand: float, offered: float) -> float:
    """Req/s `cores` can serve of a service whose requests need `cpu` seconds each, when all the services
    on them need `demand` cores: past them, each is served cores / demand of what it offers."""
    if cpu <= 0:
        return math.inf
    return cores / cpu if demand <= cores else cores / demand * offered


def arithmetic(scenario: Scenario) -> Arithmetic:
    """The scenario's arithmetic (see the module's docstring)."""
    db = scenario.database
    usable = db.max_connections - db.superuser_reserved_connections
    wanted = {name: asks(svc) for name, svc in scenario.services.items()}
    per_request = {name: _per_request(svc) for name, svc in scenario.services.items()}
    offered = {name: _rate_at_end(svc, scenario.duration) for name, svc in scenario.services.items()}
    db_cpu_demand = sum(offered[n] * per_request[n][1] for n in scenario.services)  # cores busy
    # Past the usable slots, each service gets a share of them in proportion to what it asks for.
    fits = min(1.0, max(0, usable - db.other_connections) / max(1, sum(wanted.values())))
    n_replicas = db.read_replicas
    readers = {name: svc for name, svc in scenario.services.items() if n_replicas and reads(svc)}
    replica_wanted = {name: max_pods(svc) * svc.pool.max for name, svc in readers.items()}
    on_replicas = {name: _per_request(svc, on_replica=True) for name, svc in readers.items()}
    replica_demand = sum(offered[n] * on_replicas[n][1] for n in readers)  # cores busy, all replicas together
    replica_fits = min(1.0, max(0, usable - db.other_connections) / max(1, sum(replica_wanted.values())))
    limits = {}
    for name, svc in scenario.services.items():
        connections = int(wanted[name] * fits)
        hold, cpu = per_request[name]
        pods = max_pods(svc)
        candidates = {
            "connections": connections / hold if hold > 0 else math.inf,
            "pod CPU": pods / svc.pod.cpu_per_request if svc.pod.cpu_per_request > 0 else math.inf,
            "database CPU": _served(db.cores, cpu, db_cpu_demand, offered[name]),
        }
        if name in readers:
            replica_hold, replica_cpu = on_replicas[name]
            held = n_replicas * int(replica_wanted[name] * replica_fits)
            candidates["read replicas' connections"] = held / replica_hold if replica_hold > 0 else math.inf
            candidates["read replicas' CPU"] = _served(n_replicas * db.cores, replica_cpu, replica_demand,
                                                       offered[name])
            hold = mean_hold_s(svc)  # (the whole mix's, wherever it runs)
        bottleneck = min(candidates, key=lambda k: candidates[k])
        limits[name] = ServiceLimits(name, pods, svc.pool.max, connections, hold, offered[name],
                                     candidates[bottleneck], bottleneck, pods * svc.pool.max, wanted[name],
                                     svc.pgbouncer.pool_mode if svc.pgbouncer is not None else "")
    total = sum(wanted.values()) + db.other_connections
    share = scenario.analysis.db_connections_share
    replica_total = sum(replica_wanted.values()) + db.other_connections if n_replicas else 0
    return Arithmetic(limits, db.other_connections, total, share, share * db.max_connections, usable,
                      n_replicas, replica_total)
