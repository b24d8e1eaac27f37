"""The arithmetic of a scenario, computed once from its settings alone (no run needed):
the connections its pools can ask for against what the database allows, and what
each service can serve against what it is offered.

The article's rule: pods x pool.max for every service, plus the database's other
users, stays within `db_connections_share` (0.8) of max_connections; the usable
slots (max_connections - superuser_reserved_connections) are the hard limit.
Capacity is first attempts per second, the least of three: the connections a
service can hold over the time a request holds one, its pods' event loops, and
its share of the database's cores. Read by the report, the console, the outcome
(`overloaded`) and, later, `spiralsim check`.
"""
from __future__ import annotations

import math
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


@dataclass(frozen=True)
class Arithmetic:
    """The connection rule and each service's capacity."""

    services: dict[str, ServiceLimits]
    other: int            # connections held by users not modelled
    total: int            # sum of pods x pool.max, plus `other`: what the pools can ask for
    alert_share: float    # db_connections_share
    alert_limit: float    # alert_share x max_connections
    usable: int           # max_connections - superuser_reserved_connections

    @property
    def verdict(self) -> str:
        """`holds` (within the alert share), `tight` (above it, within the usable slots) or `fails`."""
        if self.total <= self.alert_limit:
            return "holds"
        return "tight" if self.total <= self.usable else "fails"

    def sentence(self) -> str:
        """The rule in one sentence, with this scenario's numbers."""
        terms = [f"`{s.name}` {s.pods} pod{'' if s.pods == 1 else 's'} x {s.pool_max}" for s in self.services.values()]
        if self.other:
            terms.append(f"{self.other} other connections")
        head = f"{' + '.join(terms)} = {self.total} connections at most"
        limit = f"{self.alert_share:g} x max_connections = {self.alert_limit:g}"
        if self.verdict == "holds":
            return f"The arithmetic holds: {head}, within {limit}."
        if self.verdict == "tight":
            return (f"The arithmetic is tight: {head}, within the {self.usable} usable slots but above {limit}, "
                    f"where db_connections_high fires.")
        return f"The arithmetic fails: {head}, above the {self.usable} usable slots (and {limit})."


def max_pods(svc: ServiceConfig) -> int:
    """The most pods a service can run: its autoscaler's max, or its largest replica count."""
    if svc.autoscaler is not None:
        return int(svc.autoscaler.max_replicas)
    return max([int(svc.pod.replicas)] + [int(s.replicas) for s in svc.pod.schedule])


def _per_request(svc: ServiceConfig) -> tuple[float, float]:
    """(connection seconds, database CPU seconds) of one request, mean over the endpoint mix."""
    total = sum(ep.weight for ep in svc.endpoints.values())
    hold = cpu = 0.0
    for ep in svc.endpoints.values():
        share = ep.weight / total
        hold += share * _hold_s(ep)
        cpu += share * ep.statements * ep.statement_cpu
    return hold, cpu


def _hold_s(ep: EndpointConfig) -> float:
    statements = ep.statements * (ep.statement_cpu + ep.statement_wait)
    return statements + (ep.statements - 1) * ep.think if ep.kind == "transaction" else statements


def _rate_at_end(svc: ServiceConfig, end: float) -> float:
    """The offered rate just before `end`: the phase covering it (its end rate for a ramp), else the base."""
    for ph in svc.traffic.phases:
        if ph.start < end <= ph.end:
            return ph.rate
    return svc.traffic.rate


def arithmetic(scenario: Scenario) -> Arithmetic:
    """The scenario's arithmetic (see the module's docstring)."""
    db = scenario.database
    usable = db.max_connections - db.superuser_reserved_connections
    wanted = {name: max_pods(svc) * svc.pool.max for name, svc in scenario.services.items()}
    per_request = {name: _per_request(svc) for name, svc in scenario.services.items()}
    offered = {name: _rate_at_end(svc, scenario.duration) for name, svc in scenario.services.items()}
    db_cpu_demand = sum(offered[n] * per_request[n][1] for n in scenario.services)  # cores busy
    # Past the usable slots, each service gets a share of them in proportion to what it asks for.
    fits = min(1.0, max(0, usable - db.other_connections) / max(1, sum(wanted.values())))
    limits = {}
    for name, svc in scenario.services.items():
        connections = int(wanted[name] * fits)
        hold, cpu = per_request[name]
        pods = max_pods(svc)
        candidates = {
            "connections": connections / hold if hold > 0 else math.inf,
            "pod CPU": pods / svc.pod.cpu_per_request if svc.pod.cpu_per_request > 0 else math.inf,
            # all services share the cores: past them, each is served cores / demand of what it offers
            "database CPU": (db.cores / cpu if db_cpu_demand <= db.cores else db.cores / db_cpu_demand * offered[name])
            if cpu > 0 else math.inf,
        }
        bottleneck = min(candidates, key=lambda k: candidates[k])
        limits[name] = ServiceLimits(name, pods, svc.pool.max, connections, hold, offered[name],
                                     candidates[bottleneck], bottleneck)
    total = sum(wanted.values()) + db.other_connections
    share = scenario.analysis.db_connections_share
    return Arithmetic(limits, db.other_connections, total, share, share * db.max_connections, usable)
