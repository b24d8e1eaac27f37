"""The cross-field rules of the scenario tables, one function each.

A rule reads a table's fields as attributes and returns its problems as
(sub-path, message) pairs. The same function checks a validated model (its
`RULES`, run by the model's validator) and the raw data's individually valid
values (`crosscheck.py`), so a rule is written once. A message says what to
set; `HERE` in it stands for the table's own dotted path (see `errors.at_paths`).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .durations import format_duration
from .errors import HERE, Loc, format_path, show

__all__ = [
    "Problems",
    "Rule",
    "check_file_name",
    "file_name_problem",
    "aimd_bounds",
    "memory_limit_above_base",
    "incident_factor",
    "incident_forwards",
    "nodes_under_pods",
    "metrics_distinct",
    "one_metric_or_several",
    "phase_forwards",
    "phases_apart",
    "pool_min_within_max",
    "query_cannot_leak",
    "query_cannot_orphan",
    "reads_are_queries",
    "reads_on_replicas",
    "release_needs_listener",
    "role_needs_a_client",
    "replicas_min_within_max",
    "reserved_within_max",
    "backend_grows_to_its_cap",
    "serverless_scales_itself",
    "some_endpoint_weighted",
    "throttle_k_off_or_above_one",
    "warm_within_pool",
]

Problems = list[tuple[Loc, str]]
Rule = Callable[[Any], Problems]


def _too_many(key: str, got: int, limit: int, strict: bool, other: str, other_key: str) -> tuple[Loc, str]:
    """`key` above `limit` (or at it, when `strict`): set it lower or raise `other_key` (shown as `other`)."""
    most = limit - 1 if strict else limit
    return ((*key.split("."),), f"contradictory settings: must be {'<' if strict else '<='} {other} ({limit}),"
                                f" got {got}; set {HERE}{key} to at most {most} or raise {other_key}")


def reserved_within_max(database: Any) -> Problems:
    """PostgreSQL keeps superuser_reserved_connections of max_connections; some must be left."""
    if database.superuser_reserved_connections < database.max_connections:
        return []
    return [_too_many("superuser_reserved_connections", database.superuser_reserved_connections,
                      database.max_connections, True, "max_connections", "max_connections")]


def backend_grows_to_its_cap(database: Any) -> Problems:
    """A growing backend starts at backend_mb and stops at backend_max_mb, so the cap cannot be below the start."""
    if database.backend_growth_mb <= 0 or database.backend_max_mb >= database.backend_mb:
        return []
    return [(("backend_max_mb",), f"contradictory settings: must be >= backend_mb ({show(database.backend_mb)})"
                                  f" when backend_growth_mb > 0, got {show(database.backend_max_mb)}; set"
                                  f" {HERE}backend_max_mb to at least {show(database.backend_mb)} or lower"
                                  f" backend_mb")]


def pool_min_within_max(pool: Any) -> Problems:
    """A pool keeps at most `max` connections, so `min` cannot exceed it."""
    if pool.min <= pool.max:
        return []
    return [_too_many("min", pool.min, pool.max, False, "max", "max")]


def replicas_min_within_max(autoscaler: Any) -> Problems:
    """The HPA's range of replicas must not be empty."""
    if autoscaler.min_replicas <= autoscaler.max_replicas:
        return []
    return [_too_many("min_replicas", autoscaler.min_replicas, autoscaler.max_replicas, False,
                      "max_replicas", "max_replicas")]


def one_metric_or_several(autoscaler: Any) -> Problems:
    """An HPA reads one metric (`signal` and `target`) or several (`metrics`): one of the two, not both."""
    if autoscaler.metrics is None:
        if autoscaler.target is None:
            return [(("target",), f"required key is missing (or list several metrics as {HERE}metrics)")]
        return []
    given = [key for key in ("signal", "target") if getattr(autoscaler, key) is not None]
    if not given:
        return []
    return [(("metrics",), f"contradictory settings: one metric is signal and target, several are metrics;"
                           f" remove {' and '.join(HERE + k for k in given)} (or {HERE}metrics)")]


def metrics_distinct(autoscaler: Any) -> Problems:
    """Each signal once among an HPA's metrics: two targets for one signal is one too many."""
    if not autoscaler.metrics:
        return []
    signals = [m.signal for m in autoscaler.metrics]
    twice = sorted({s for s in signals if signals.count(s) > 1})
    return [(("metrics",), f"each signal at most once; given more than once: {', '.join(twice)}")] if twice else []


def throttle_k_off_or_above_one(client: Any) -> Problems:
    """Below K = 1 the SRE book's formula rejects requests the backend would all accept."""
    if client.throttle_k == 0 or client.throttle_k >= 1:
        return []
    return [(("throttle_k",), f"must be 0 (off) or at least 1 (2 is usual), got {show(client.throttle_k)};"
                              f" below 1 it rejects requests even when the backend accepts every one")]


def role_needs_a_client(endpoint: Any) -> Problems:
    """SET ROLE holds for a session: only a checked-out client keeps one for the request."""
    out = []
    if endpoint.set_role and endpoint.kind == "query":
        out.append((("set_role",), f"contradictory settings: pool.query may run each statement on another"
                                   f' connection, so a SET ROLE does not hold; set {HERE}kind = "transaction"'
                                   f" (pool.connect)"))
    if endpoint.role_leak_rate > 0 and not endpoint.set_role:
        out.append((("role_leak_rate",), f"contradictory settings: only a request that sets a role can leave it;"
                                         f" set {HERE}set_role = true or role_leak_rate = 0"))
    return out


def release_needs_listener(pod: Any) -> Problems:
    """Releasing a client from its 'error' listener means there is a listener: no crash."""
    if not (pod.release_on_client_error and pod.crash_on_client_error):
        return []
    return [(("release_on_client_error",), f"contradictory settings: a client 'error' listener that releases"
                                           f" the client means the pod does not crash; set"
                                           f" {HERE}crash_on_client_error = false")]


def aimd_bounds(pod: Any) -> Problems:
    """The adaptive limit starts within [aimd_min, aimd_max]."""
    if pod.aimd_min <= pod.aimd_initial <= pod.aimd_max:
        return []
    return [(("aimd_initial",), f"contradictory settings: must be within aimd_min ({pod.aimd_min}) and aimd_max"
                                f" ({pod.aimd_max}), got {pod.aimd_initial}; set {HERE}aimd_initial,"
                                f" aimd_min or aimd_max")]


def memory_limit_above_base(pod: Any) -> Problems:
    """A memory limit leaves room for the process at rest."""
    if pod.memory_limit_mb == 0 or pod.memory_limit_mb > pod.memory_base_mb:
        return []
    return [(("memory_limit_mb",), f"contradictory settings: {pod.memory_limit_mb:g} MB is no more than the"
                                   f" process at rest (memory_base_mb = {pod.memory_base_mb:g}): it could never"
                                   f" start; raise {HERE}memory_limit_mb or lower {HERE}memory_base_mb")]


def serverless_scales_itself(service: Any) -> Problems:
    """A serverless platform starts an instance per concurrent request: no HPA, no replica schedule."""
    if service.serverless is None:
        return []
    out = []
    if service.autoscaler is not None:
        out.append((("autoscaler",), f"contradictory settings: a serverless service starts an instance per"
                                     f" concurrent request itself; remove {HERE}autoscaler (or {HERE}serverless)"))
    if service.pod.schedule:
        out.append((("pod", "schedule"), f"contradictory settings: a serverless service has no replica count to"
                                         f" schedule; remove {HERE}pod.schedule (or {HERE}serverless)"))
    return out


def warm_within_pool(service: Any) -> Problems:
    """A pod opens its warm connections through its pool, and holds its leaked ones there: no more than pool.max
    each (a pod running at time 0 opens its warm ones beside its leaked ones up to pool.max)."""
    warm, most, leaked = service.pod.warm_connections, service.pool.max, service.pod.leaked_at_start
    if warm > most:
        return [_too_many("pod.warm_connections", warm, most, False, "pool.max", f"{HERE}pool.max")]
    if leaked > most:
        return [_too_many("pod.leaked_at_start", leaked, most, False, "pool.max", f"{HERE}pool.max")]
    return []


def leaks_need_a_leaky_endpoint(service: Any) -> Problems:
    """Clients leaked before the run came from an endpoint that can leak, in pods running at time 0."""
    if service.pod.leaked_at_start == 0:
        return []
    if service.serverless is not None:
        return [(("pod", "leaked_at_start"), f"is for pods running at time 0; a [{HERE}serverless] service has"
                                            f" none (its instances start cold)")]
    if not any(e.kind == "transaction" and e.leak_on_error for e in service.endpoints.values()):
        return [(("pod", "leaked_at_start"), "needs an endpoint that leaks (kind = \"transaction\" with"
                                            " leak_on_error = true): nothing else leaves a client checked out")]
    return []


def some_endpoint_weighted(service: Any) -> Problems:
    """Requests pick an endpoint by weight, so one weight at least must be > 0."""
    if any(e.weight > 0 for e in service.endpoints.values()):
        return []
    first = format_path(("endpoints", next(iter(service.endpoints), "NAME")))
    return [(("endpoints",), f"every endpoint has weight 0; at least one must be > 0; set e.g."
                             f" {HERE}{first}.weight = 1")]


def query_cannot_leak(endpoint: Any) -> Problems:
    """A query endpoint (pool.query) releases its connection itself: it cannot leak."""
    if endpoint.kind != "query" or not endpoint.leak_on_error:
        return []
    return [(("leak_on_error",), f"contradictory settings: a query endpoint (pool.query) cannot leak;"
                                 f' set {HERE}kind = "transaction" (pool.connect) or leak_on_error = false')]


def query_cannot_orphan(endpoint: Any) -> Problems:
    """A query endpoint opens no transaction, so none can be left open."""
    if endpoint.kind != "query" or not endpoint.orphan_rate > 0:
        return []
    return [(("orphan_rate",), f"contradictory settings: a query endpoint (pool.query) opens no transaction"
                               f' to orphan; set {HERE}kind = "transaction" or orphan_rate = 0')]


def reads_are_queries(endpoint: Any) -> Problems:
    """A read goes to a replica one `pool.query()` at a time; a transaction (pool.connect) writes on the primary."""
    if not endpoint.reads or endpoint.kind == "query":
        return []
    return [(("reads",), f"contradictory settings: a transaction endpoint (pool.connect) runs on the primary;"
                         f' set {HERE}kind = "query" (pool.query) or reads = false')]


def reads_on_replicas(scenario: Any) -> Problems:
    """A read needs a replica to go to, and pods to hold a pool per replica (not serverless instances)."""
    out: Problems = []
    for name, service in scenario.services.items():
        for ep_name, endpoint in service.endpoints.items():
            if not endpoint.reads or endpoint.kind != "query":  # (a transaction's reads: reads_are_queries)
                continue
            at = ("services", name, "endpoints", ep_name, "reads")
            if scenario.database.read_replicas == 0:
                out.append((at, "contradictory settings: reads go to a read replica and the database has none;"
                                f" set {HERE}database.read_replicas to at least 1 or {format_path(at)} = false"))
            elif service.serverless is not None:
                out.append((at, "not supported: a serverless service keeps one pool per instance, on the primary;"
                                f" set {format_path(at)} = false (or remove {format_path(at[:2])}.serverless)"))
    return out


def nodes_under_pods(scenario: Any) -> Problems:
    """node_lost takes pods from a deployment; a serverless platform's instances are not on nodes of ours."""
    out: Problems = []
    for i, incident in enumerate(scenario.incidents):
        if incident.kind != "node_lost":
            continue
        for name in incident.services or scenario.services:
            service = scenario.services.get(name)
            if service is not None and service.serverless is not None:
                out.append((("incidents", i, "kind"), f"not supported: node_lost takes pods from a deployment and"
                                                      f" {name} is serverless; list other services in"
                                                      f" {format_path(('incidents', i, 'services'))}"))
    return out


def _forwards(what: str, window: Any) -> Problems:
    """A window [start, end) must end after it starts."""
    start, end = window.start, window.end
    if end > start:
        return []
    word = "before" if end < start else "equal to"
    return [((), f"backwards {what}: end {format_duration(end)} is {word} start {format_duration(start)};"
                 f" set {HERE}end after {format_duration(start)}")]


def phase_forwards(phase: Any) -> Problems:
    """A traffic phase ends after it starts."""
    return _forwards("phase", phase)


def incident_forwards(incident: Any) -> Problems:
    """An incident's window ends after it starts."""
    return _forwards("window", incident)


def phases_apart(traffic: Any) -> Problems:
    """Phases set the rate of a window each, so no two may overlap (each is checked against the first it overlaps)."""
    problems: Problems = []
    for j, b in enumerate(traffic.phases):
        for i, a in enumerate(traffic.phases[:j]):
            if a.start < b.end and b.start < a.end:
                fix = (f"start to at least {format_duration(a.end)}" if b.start >= a.start
                       else f"end to at most {format_duration(a.start)}")
                problems.append((("phases", j), f"overlaps phases[{i}] ({format_duration(a.start)}.."
                                 f"{format_duration(a.end)} and {format_duration(b.start)}.."
                                 f"{format_duration(b.end)}); set {HERE}phases[{j}].{fix}"))
                break
    return problems


def incident_factor(incident: Any) -> Problems:
    """slow_queries multiplies statement time by `factor`; the other kinds take none; only node_lost takes `pods`."""
    if incident.kind == "slow_queries" and incident.factor is None:
        return [(("factor",), "required key is missing (slow_queries multiplies statement time);"
                              f" set {HERE}factor, e.g. 10")]
    if incident.kind != "slow_queries" and incident.factor is not None:
        return [(("factor",), f"contradictory settings: only slow_queries takes a factor, not {incident.kind};"
                              f' remove {HERE}factor or set kind = "slow_queries"')]
    if incident.kind != "slow_queries" and incident.ramp:
        return [(("ramp",), f"contradictory settings: only slow_queries ramps its factor, not {incident.kind};"
                            f" remove {HERE}ramp")]
    if incident.kind != "node_lost" and incident.pods is not None:
        return [(("pods",), f"contradictory settings: only node_lost loses pods, not {incident.kind};"
                            f" remove {HERE}pods")]
    return []


_FORBIDDEN = (("/", "a '/'"), ("\\", "a '\\'"), ("..", "'..'"))


def file_name_problem(name: str) -> str | None:
    """Why `name` cannot name a run folder (runs/NAME-SEED/), or None when it can."""
    if not name.strip():
        return "it is empty"
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in name):
        return "it contains a control character"
    for text, said in _FORBIDDEN:
        if text in name:
            return f"it contains {said}"
    if name.startswith("."):
        return "it starts with '.'"
    return None


def check_file_name(name: str) -> str:
    """A pydantic after-validator: `name` unchanged, or ValueError saying what to set."""
    why = file_name_problem(name)
    if why is None:
        return name
    plain = "".join(c if c.isprintable() and c not in "/\\" else "-" for c in name.replace("..", "-"))
    plain = plain.strip(" .-") or "scenario"
    raise ValueError(f"must be a plain file name (it names the run folder runs/NAME-SEED/), got {show(name)}:"
                     f" {why}; set name to e.g. {plain!r}")
