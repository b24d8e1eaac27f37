"""`spiralsim check`: the article's rules on a scenario's settings, before any simulation.

One function per rule, listed in `RULES`: the connection and settings rules here, the
rules about time (timeouts, retries, Little's law, the event loops' load) in `check_time.py`, what a finding is
in `finding.py`. Each returns its findings: one per service it concerns, or one for the
whole system (service ""), each a line with the numbers and the article's reason. The
connection rules read `arithmetic(scenario)`, the numbers of the report's sentence and of
summary.json's `arithmetic`. A rule that does not apply (the PgBouncer rules without
PgBouncer) returns nothing.

Status: `fail` where the article states a rule the settings break (the 0.8 x
max_connections sum, the usable slots, timeouts in order, acquire timeout 0, a handler
without try/finally, retries that hold several slots, PgBouncer in session mode for more
clients than servers or past max_client_conn, an orphaning endpoint with no
idle-in-transaction backstop), `warn` where it gives advice the settings ignore (a
statement_timeout, the idle-in-transaction backstop, an acquire timeout of at most 5 s)
or where only the autoscaler or an incident takes a service past its pools (Little's
law) or its event loops, `ok` otherwise; a load past every event loop the pods can
have fails. `spiralsim check` exits 1 when any finding fails.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from ..scenario import Scenario
from .arithmetic import Arithmetic, arithmetic, reads
from .check_time import BUFFER_S, event_loop, little_law, pod_memory, retries_hold_slots, timeouts_in_order
from .finding import FAIL, OK, WARN, Finding, duration, pods

__all__ = ["ACQUIRE_MAX_S", "BUFFER_S", "FAIL", "OK", "RULES", "WARN", "Finding", "Rule", "check"]

#: The article's acquire timeout: "between 1 and 5 seconds".
ACQUIRE_MAX_S = 5.0


@dataclass(frozen=True)
class Rule:
    """A rule: its stable id, what it checks in a sentence, and the function that checks it."""

    name: str
    says: str
    check: Callable[[Scenario, Arithmetic], list[Finding]]


# ---------------------------------------------------------------- connections


def _connections_share(sc: Scenario, a: Arithmetic) -> list[Finding]:
    over = a.total > a.alert_limit
    status, where = (FAIL, "above") if over else (OK, "within")
    limit = f"{a.alert_share:g} x max_connections = {a.alert_limit:g}"
    out = []
    for name, s in a.services.items():
        others = a.total - s.asks
        room = max(0, math.floor(a.alert_limit) - others)
        if room < (1 if s.pool_mode else s.pods):
            fit = f"no room left: the others ask for {others}"
        elif s.pool_mode:
            fit = f"room for {room}: PgBouncer's server pool at most {room}"
        else:
            fit = (f"room for {room}: pool.max {room // s.pods} at {s.pods} pod{'' if s.pods == 1 else 's'},"
                   f" or {room // s.pool_max} pods of {s.pool_max}")
        ask = s.asking() + ("" if s.pool_mode else f" = {s.asks}")
        plus = f", plus {others} for the others = {a.total}" if others else ""
        out.append(Finding("connections_share", name, status, f"{name}: {ask}{plus}, {where} {limit}; {fit}",
                           {"asks": s.asks, "others": others, "total": a.total, "limit": a.alert_limit,
                            "room": room}))
    out.append(Finding("connections_share", "", status,
                       f"{a.equation('')} connections at most, {where} {limit}: the article's rule (max pool x max"
                       f" pods + others <= {a.alert_share:g} x max_connections) keeps the rest for replication,"
                       f" superusers and your psql at 2am",
                       {"total": a.total, "limit": a.alert_limit, "verdict": a.verdict}))
    return out


def _connections_usable(sc: Scenario, a: Arithmetic) -> list[Finding]:
    db = sc.database
    over = a.total > a.usable
    then = ("past them the database refuses connects (53300) and a pod that needs its connections at start"
            " crashes" if over else "no pool can be refused a connect by the database")
    line = (f"{a.equation('')} connections at most, {'above' if over else 'within'} the {a.usable} usable slots"
            f" (max_connections {db.max_connections} - {db.superuser_reserved_connections} reserved): {then}")
    return [Finding("connections_usable", "", FAIL if over else OK, line,
                    {"total": a.total, "usable": a.usable, "verdict": a.verdict})]


def _replica_connections(sc: Scenario, a: Arithmetic) -> list[Finding]:
    if not a.replicas:
        return []
    terms = [f"{s.name} {pods(s.pods, s.pool_max)}" for s in a.services.values() if reads(sc.services[s.name])]
    if a.other:
        terms.append(f"{a.other} other connections")
    over, past = a.replica_total > a.alert_limit, a.replica_total > a.usable
    where = (f"above the {a.usable} usable slots (and {a.alert_share:g} x max_connections = {a.alert_limit:g})"
             if past else f"{'above' if over else 'within'} {a.alert_share:g} x max_connections = {a.alert_limit:g}")
    each = "the read replica" if a.replicas == 1 else f"each of the {a.replicas} read replicas"
    line = (f"{each}: {' + '.join(terms)} ="
            f" {a.replica_total} connections at most, {where}: every pod keeps a pool per replica, so pods x pool.max"
            f" applies to each replica too, its max_connections apart from the primary's")
    return [Finding("replica_connections", "", FAIL if over else OK, line,
                    {"replicas": a.replicas, "total": a.replica_total, "limit": a.alert_limit, "usable": a.usable,
                     "verdict": a.replica_verdict})]


def _pgbouncer_session_mode(sc: Scenario, a: Arithmetic) -> list[Finding]:
    out = []
    for name, svc in sc.services.items():
        if svc.pgbouncer is None:
            continue
        s, servers = a.services[name], svc.pgbouncer.default_pool_size
        clients = f"{name}: {pods(s.pods, s.pool_max)} = {s.clients} client connections"
        figures = {"pool_mode": s.pool_mode, "clients": s.clients, "servers": servers}
        if s.pool_mode == "transaction":
            out.append(Finding("pgbouncer_session_mode", name, OK, f"{clients} share {servers} server connections"
                               f" in transaction mode, one per transaction: the math problem disappears", figures))
        elif s.clients > servers:
            out.append(Finding("pgbouncer_session_mode", name, FAIL,
                               f"{clients} for {servers} server connections in session mode: each client keeps"
                               f" its server for life, so {s.clients - servers} wait in PgBouncer (query_wait_timeout"
                               f" {duration(svc.pgbouncer.query_wait_timeout)}): the max x pods problem comes back at a"
                               f" different layer (the article); use transaction mode", figures))
        else:
            out.append(Finding("pgbouncer_session_mode", name, OK,
                               f"{clients}, within the {servers} server connections of session mode", figures))
    return out


def _pgbouncer_max_client_conn(sc: Scenario, a: Arithmetic) -> list[Finding]:
    out = []
    for name, svc in sc.services.items():
        if svc.pgbouncer is None:
            continue
        s, most = a.services[name], svc.pgbouncer.max_client_conn
        over = s.clients > most
        out.append(Finding("pgbouncer_max_client_conn", name, FAIL if over else OK,
                           f"{name}: {pods(s.pods, s.pool_max)} = {s.clients} client connections,"
                           f" {'above' if over else 'within'} PgBouncer's max_client_conn {most}"
                           + (": it refuses the others (pgbouncer_refused)" if over else ""),
                           {"clients": s.clients, "max_client_conn": most}))
    return out


# ---------------------------------------------------------------- settings


def _acquire_timeout(sc: Scenario, a: Arithmetic) -> list[Finding]:
    out = []
    for name, svc in sc.services.items():
        t = svc.pool.acquire_timeout
        if t == 0:
            status, line = FAIL, (f"{name}: pool.acquire_timeout 0 waits forever (node-postgres's default): a"
                                  f" caller that gave up stays queued and the queue can outlive its trigger (the"
                                  f" article: almost never what you want; 1 to 5 s)")
        elif t > ACQUIRE_MAX_S:
            status, line = WARN, (f"{name}: pool.acquire_timeout {duration(t)}, above the article's 1 to 5 s: a long"
                                  f" wait wedges the pods with waiting callers; shrink it and fail fast")
        else:
            status, line = OK, f"{name}: pool.acquire_timeout {duration(t)}, at most the article's 5 s"
        out.append(Finding("acquire_timeout", name, status, line, {"acquire_timeout_s": t}))
    return out


def _statement_timeout(sc: Scenario, a: Arithmetic) -> list[Finding]:
    t = sc.database.statement_timeout
    bare = [n for n, svc in sc.services.items() if svc.statement_timeout(sc.database) <= 0]
    roles = {n: svc.role.statement_timeout for n, svc in sc.services.items() if svc.role.statement_timeout is not None}
    figures = {"statement_timeout_s": t, "roles": roles}
    if not bare:
        where = f"database.statement_timeout {duration(t)}" if not roles else "statement_timeout " + ", ".join(
            f"{n} {duration(svc.statement_timeout(sc.database))}" for n, svc in sc.services.items())
        return [Finding("statement_timeout", "", OK, f"{where}: Postgres cancels a statement that hangs", figures)]
    where = "database.statement_timeout 0" if not roles else \
        f"statement_timeout 0 for {', '.join(bare)} (database.statement_timeout 0, and no role of theirs sets one)"
    return [Finding("statement_timeout", "", WARN, f"{where}: nothing cancels a statement that hangs (the"
                    f" article sets it on the role, e.g. 20s: an answer that needs no deploy)", figures)]


def _idle_in_transaction_timeout(sc: Scenario, a: Arithmetic) -> list[Finding]:
    t = sc.database.idle_in_transaction_session_timeout
    if any(svc.role.idle_in_transaction_session_timeout is not None for svc in sc.services.values()):
        covered = {s: svc.idle_in_transaction_session_timeout(sc.database) for s, svc in sc.services.items()}
        t = min(covered.values())  # the rule holds only when every role has the backstop
    orphans = [f"{s}.{e}" for s, svc in sc.services.items() for e, ep in svc.endpoints.items()
               if ep.orphan_rate > 0 and ep.weight > 0]
    figures = {"idle_in_transaction_session_timeout_s": t, "orphaning_endpoints": orphans}
    if t > 0:
        return [Finding("idle_in_transaction_timeout", "", OK, f"database.idle_in_transaction_session_timeout"
                        f" {duration(t)}: the server ends a session left idle in transaction, and frees its locks",
                        figures)]
    if orphans:
        return [Finding("idle_in_transaction_timeout", "", FAIL, f"database.idle_in_transaction_session_timeout 0"
                        f" while {', '.join(orphans)} can leave a transaction open: its session and its locks stay"
                        f" for good (the article: the backstop for the orphan-transaction leak; 60 s)", figures)]
    return [Finding("idle_in_transaction_timeout", "", WARN, "database.idle_in_transaction_session_timeout 0: no"
                    " backstop for a transaction left open (the article: 60 s, a safety net that costs nothing)",
                    figures)]


def _leak_prone_endpoint(sc: Scenario, a: Arithmetic) -> list[Finding]:
    out = []
    for name, svc in sc.services.items():
        leaky = [e for e, ep in svc.endpoints.items() if ep.kind == "transaction" and ep.leak_on_error
                 and ep.weight > 0]
        line = (f"{name}: {', '.join(leaky)} call{'s' if len(leaky) == 1 else ''} pool.connect() without"
                f" try/finally (leak_on_error): an error skips release() and the client stays checked out for"
                f" good, one fewer connection each time (the article: use the withTransaction helper)"
                if leaky else f"{name}: no endpoint leaks its client on an error")
        out.append(Finding("leak_prone_endpoint", name, FAIL if leaky else OK, line, {"endpoints": leaky}))
    return out


def _memory(sc: Scenario, a: Arithmetic) -> list[Finding]:
    db = sc.database
    if db.memory_mb <= 0:
        return []  # memory is not modelled
    worst = db.worst_case_memory_mb()
    figures = {"memory_mb": db.memory_mb, "worst_case_mb": round(worst, 3)}
    backend = f"backend {db.backend_mb:g} MB"
    if db.backend_growth_mb > 0:
        backend = f"backend grown to {db.largest_backend_mb():g} MB"
        figures["backend_max_mb"] = db.largest_backend_mb()
    words = (f"shared_buffers {db.shared_buffers_mb:,.0f} MB + max_connections {db.max_connections} x ({backend}"
             f" + work_mem {db.work_mem_mb:g} MB x {db.work_mem_per_statement:g}) = {worst:,.0f} MB")
    if worst <= db.memory_mb:
        return [Finding("memory", "", OK, f"{words}, within the server's {db.memory_mb:,.0f} MB of RAM", figures)]
    line = (f"{words}, above the server's {db.memory_mb:,.0f} MB of RAM: with every slot busy it swaps, and each"
            f" statement runs {db.swap_slowdown:g}x slower (the article: work_mem x max_connections for the worst"
            f" case; raising max_connections can quietly push you to swap)")
    if db.backend_growth_mb > 0 and db.memory_used_mb(db.max_connections, db.max_connections) <= db.memory_mb:
        return [_growth_finding(sc, line, figures)]
    return [Finding("memory", "", FAIL, line, figures)]


def _growth_finding(sc: Scenario, line: str, figures: dict) -> Finding:
    """Only grown backends pass the RAM: rotation bounds the growth (a new connection is a new backend)."""
    db = sc.database
    unrotated = [name for name, svc in sc.services.items()
                 if svc.pgbouncer is not None or (svc.pool.max_lifetime <= 0 and svc.pool.max_uses <= 0)]
    figures["unrotated"] = unrotated
    rotate = (f"backends grow {db.backend_growth_mb:g} MB per statement and only a new connection starts again at"
              f" {db.backend_mb:g} MB: the article's pool.max_lifetime (3600 s) or max_uses bounds the growth")
    if unrotated:
        return Finding("memory", "", FAIL, f"{line}; {rotate}, and {', '.join(unrotated)} never rotate"
                       f"{'s its' if len(unrotated) == 1 else ' their'} connections", figures)
    return Finding("memory", "", WARN, f"{line}; {rotate}, which every service sets: how far a backend grows"
                   f" before it is replaced depends on its statements per lifetime", figures)


#: The rules, in the order `spiralsim check` and docs/reference.md §8 list them.
RULES: tuple[Rule, ...] = (
    Rule("connections_share", "pool.max x max pods of every service, plus other connections, <= "
         "db_connections_share (0.8) x max_connections", _connections_share),
    Rule("connections_usable", "the same sum <= the usable slots (max_connections - superuser reserve)",
         _connections_usable),
    Rule("replica_connections", "with read replicas, for each: pool.max x max pods of every service that reads, plus "
         "other connections, <= db_connections_share (0.8) x max_connections", _replica_connections),
    Rule("memory", "with database.memory_mb set: shared_buffers + max_connections x (backend, grown to"
         " backend_max_mb when backends grow, + work_mem per statement) <= the RAM (grown backends only: warns"
         " when every pool rotates its connections)", _memory),
    Rule("pgbouncer_session_mode", "behind PgBouncer in session mode: pods x pool.max <= default_pool_size",
         _pgbouncer_session_mode),
    Rule("pgbouncer_max_client_conn", "behind PgBouncer: pods x pool.max <= max_client_conn",
         _pgbouncer_max_client_conn),
    Rule("timeouts_in_order", f"acquire timeout (+ PgBouncer's query_wait_timeout) + statement_timeout +"
         f" {BUFFER_S:g} s < upstream_timeout and < client timeout", timeouts_in_order),
    Rule("little_law", "rate x hold time <= the connections the pods hold, at the base rate, each phase and each "
         "slow_queries incident", little_law),
    Rule("event_loop", "rate x event-loop CPU per request (cpu_per_request + statements x query_result_cpu) <= the "
         "pods' event loops, one core each, at the base rate and each phase", event_loop),
    Rule("pod_memory", "with pod.memory_limit_mb set: memory_base_mb + rate per pod x attempts x acquire timeout x"
         " request_memory_kb <= the limit, at the base rate and each phase", pod_memory),
    Rule("acquire_timeout", "pool.acquire_timeout > 0 (fails) and <= 5 s (warns)", _acquire_timeout),
    Rule("statement_timeout", "database.statement_timeout > 0", _statement_timeout),
    Rule("idle_in_transaction_timeout", "database.idle_in_transaction_session_timeout > 0 (fails when an "
         "endpoint can orphan a transaction)", _idle_in_transaction_timeout),
    Rule("leak_prone_endpoint", "no transaction endpoint with leak_on_error = true", _leak_prone_endpoint),
    Rule("retries_hold_slots", "with retries, an attempt ends server-side before its caller gives up and retries",
         retries_hold_slots),
)


def check(scenario: Scenario) -> list[Finding]:
    """Every rule's findings, in `RULES` order."""
    arith = arithmetic(scenario)
    return [finding for rule in RULES for finding in rule.check(scenario, arith)]
