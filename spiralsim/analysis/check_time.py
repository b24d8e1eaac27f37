"""The rules of `spiralsim check` (analysis/check.py) that reason about time: the timeouts in
the article's order, retries that let one user hold several pool slots, and Little's law
(concurrency = rate x the time a request holds its connection) against the pools.

Little's law is read at the base rate against the replicas the service starts with, at each
phase above it and each slow_queries incident against the replicas its `schedule` sets by
then; with an autoscaler, what its max_replicas could hold (the arithmetic's connections,
shared pro rata past the usable slots) is the most. Past that most it fails (warns during an
incident: the pool queues while it lasts, and the timeouts decide what follows); past what
the running pods hold it warns (only new pods, once started, serve it); above
`pool_saturation_share` (0.8) of it, it warns too: the article's pool_saturation alert fires
there, and a pool that busy has no room for a slow-query day.
"""
from __future__ import annotations

import math

from ..scenario import Scenario, ServiceConfig
from .arithmetic import Arithmetic, hold_s, mean_hold_s
from .finding import FAIL, OK, WARN, Finding, duration, figure, pods

#: The "small buffer" the article adds to acquire timeout + query timeout before the upstream timeout: for
#: the hop, the pod's CPU and a statement's tail. Half a second, so that the article's own fix ("shrink it to
#: 1 second") passes under a 2 s client (retry_storm's, and the counterfactual acquire timeout).
BUFFER_S = 0.5


def _statements_s(sc: Scenario, svc: ServiceConfig, answer: bool = False) -> tuple[float, str, bool]:
    """The longest a request's statements hold its connection, over its endpoints, in words, and
    whether a statement_timeout bounds it (else it is their expected time, and nothing bounds them).
    `answer`: how long until the app has its answer instead: node-postgres's query_timeout, if shorter,
    gives up on a statement the server goes on with (it frees no slot, so it does not bound the holding)."""
    st = svc.statement_timeout(sc.database)
    q = svc.pool.query_timeout
    eps = [ep for ep in svc.endpoints.values() if ep.weight > 0]
    if answer and q > 0 and (st <= 0 or q < st):
        ep = max(eps, key=lambda e: e.statements * q + ((e.statements - 1) * e.think if e.kind == "transaction" else 0))
        think = (ep.statements - 1) * ep.think if ep.kind == "transaction" else 0.0
        words = f"query_timeout {duration(q)}" if ep.statements == 1 else \
            f"{ep.statements} x query_timeout {duration(q)}" + (f" + think {duration(think)}" if think else "")
        return ep.statements * q + think, words, st > 0
    if st <= 0:
        longest = max(hold_s(ep) for ep in eps)
        return longest, f"expected statements {duration(longest)}", False
    ep = max(eps, key=lambda e: e.statements * st + ((e.statements - 1) * e.think if e.kind == "transaction" else 0))
    think = (ep.statements - 1) * ep.think if ep.kind == "transaction" else 0.0
    words = f"statement_timeout {duration(st)}" if ep.statements == 1 else \
        f"{ep.statements} x statement_timeout {duration(st)}" + (f" + think {duration(think)}" if think else "")
    return ep.statements * st + think, words, True


def _server_side(sc: Scenario, svc: ServiceConfig, answer: bool = False) -> tuple[float, str, bool]:
    """The longest an attempt can last in the service (acquire, PgBouncer's queue, statements), its
    terms in words, and whether a statement_timeout bounds the statements (`answer`: until the app answers,
    see `_statements_s`)."""
    acquire = svc.pool.acquire_timeout or math.inf
    terms = [f"acquire timeout {duration(acquire)}"]
    total = acquire
    if svc.pgbouncer is not None:
        wait = svc.pgbouncer.query_wait_timeout or math.inf
        terms.append(f"PgBouncer's query_wait_timeout {duration(wait)}")
        total += wait
    statements, words, bounded = _statements_s(sc, svc, answer)
    return total + statements, " + ".join(terms + [words]), bounded


def timeouts_in_order(sc: Scenario, a: Arithmetic) -> list[Finding]:
    """Per service: acquire timeout (+ PgBouncer's wait) + statement time + BUFFER_S < upstream and client timeout."""
    out = []
    for name, svc in sc.services.items():
        held, terms, _ = _server_side(sc, svc, answer=True)
        total = held + BUFFER_S
        limits = [(w, v) for w, v in (("upstream_timeout", svc.balancer.upstream_timeout),
                                      ("client timeout", svc.client.timeout)) if v > 0]
        late = [f"the {w} {duration(v)}" for w, v in limits if total >= v]
        early = [f"the {w} {duration(v)}" for w, v in limits if total < v]
        than = "; ".join(([f"less than {' and '.join(early)}"] if early else [])
                         + ([f"not less than {' and '.join(late)}"] if late else [])) or "no upstream or client timeout"
        why = ("the caller gets an error first while the service goes on with work nobody waits for (the article:"
               " acquire + query timeout + a small buffer < the upstream timeout)" if late else
               "the service answers or gives up before its caller does")
        out.append(Finding("timeouts_in_order", name, FAIL if late else OK,
                           f"{name}: {terms} + {duration(BUFFER_S)} buffer = {duration(total)}, {than}: {why}",
                           {"server_side_s": figure(held), "buffer_s": BUFFER_S, "total_s": figure(total),
                            **{w.replace(" ", "_") + "_s": v for w, v in limits}}))
    return out


def retries_hold_slots(sc: Scenario, a: Arithmetic) -> list[Finding]:
    """Per service: with retries, can an attempt outlast the timeout after which its caller retries?"""
    out = []
    for name, svc in sc.services.items():
        c, n = svc.client, svc.client.max_attempts
        quits = [v for kind, v in (("client_timeout", c.timeout), ("upstream_timeout", svc.balancer.upstream_timeout))
                 if v > 0 and kind in c.retry_on]
        held, terms, bounded = _server_side(sc, svc)
        figures = {"max_attempts": n, "gives_up_s": min(quits, default=None), "server_side_s": figure(held),
                   "slots_per_user": 1}
        if n == 1 or not quits:
            why = "one attempt per user" if n == 1 else "no timeout that the client retries abandons an attempt"
            out.append(Finding("retries_hold_slots", name, OK, f"{name}: {why}", figures))
            continue
        gives_up = min(quits)
        if held >= gives_up:
            capped = c.retry_budget > 0 or c.circuit_breaker
            figures["slots_per_user"] = n
            out.append(Finding("retries_hold_slots", name, WARN if capped else FAIL,
                               f"{name}: an attempt can last {duration(held)} in the service ({terms}), past the"
                               f" {duration(gives_up)} after which its caller retries: with {n} attempts one user holds"
                               f" up to {n} pool slots (the article: cap retries)"
                               + ("; the retry budget or breaker caps them once they mount" if capped else ""),
                               figures))
        elif not bounded:
            out.append(Finding("retries_hold_slots", name, WARN,
                               f"{name}: an attempt lasts {duration(held)} in the service, within the"
                               f" {duration(gives_up)} after which its caller retries, but no statement_timeout"
                               f" bounds it: a statement that hangs keeps its attempt running while the user"
                               f" retries, up to {n} slots per user",
                               figures))
        else:
            out.append(Finding("retries_hold_slots", name, OK,
                               f"{name}: an attempt lasts at most {duration(held)} in the service, less than the"
                               f" {duration(gives_up)} after which its caller retries: no retry competes with its own"
                               f" abandoned attempt", figures))
    return out


# ---------------------------------------------------------------- Little's law


def _replicas_at(svc: ServiceConfig, t: float) -> int:
    """The replicas the deployment is set to at `t` (its `schedule`; the autoscaler aside); a
    serverless service starts an instance per concurrent request, up to max_instances."""
    if svc.serverless is not None:
        return svc.serverless.max_instances
    n = svc.pod.replicas
    for step in sorted(svc.pod.schedule, key=lambda s: s.at):
        if step.at <= t:
            n = step.replicas
    return n


def _rate_at(svc: ServiceConfig, t: float) -> float:
    return next((p.rate for p in svc.traffic.phases if p.start <= t < p.end), svc.traffic.rate)


def _points(sc: Scenario, name: str, svc: ServiceConfig) -> list[tuple[str, float, float, float, bool]]:
    """(when, time, rate, hold s, incident) at the base rate, at each phase above it, and at each
    slow_queries incident that hits the service (its statements slowed, at most statement_timeout)."""
    hold = mean_hold_s(svc)
    out = [("the base rate", 0.0, svc.traffic.rate, hold, False)]
    out += [(f"the phase at {_clock(p.start)}", p.start, p.rate, hold, False)
            for p in sorted(svc.traffic.phases, key=lambda p: p.start) if p.rate > svc.traffic.rate]
    for inc in sc.incidents:
        if inc.kind != "slow_queries" or (inc.services and name not in inc.services):
            continue
        factors = {e: inc.factor or 1.0 for e in svc.endpoints if not inc.endpoints or e in inc.endpoints}
        label = (f"the slow_queries ramping to x{inc.factor:g} by {_clock(inc.end)}" if inc.ramp else
                 f"the slow_queries x{inc.factor:g} at {_clock(inc.start)}")
        out.append((label, inc.start, _rate_at(svc, inc.start),
                    mean_hold_s(svc, factors, svc.statement_timeout(sc.database)), True))
    return out


def _clock(t: float) -> str:
    s = int(t)
    return f"{s // 60}:{s % 60:02d}"


def little_law(sc: Scenario, a: Arithmetic) -> list[Finding]:
    """Per service and point in time (see the module's docstring): rate x hold time against the connections."""
    share, out = sc.analysis.pool_saturation_share, []
    for name, svc in sc.services.items():
        lim = a.services[name]
        for when, t, rate, hold, incident in _points(sc, name, svc):
            n = _replicas_at(svc, t)
            leaked = min(n, svc.pod.replicas) * svc.pod.leaked_at_start  # the pods running at time 0 keep theirs
            have = max(0, min(n * svc.pool.max, lim.connections) - leaked)
            most = max(0, lim.connections - leaked) if svc.autoscaler is not None else have
            need = rate * hold
            capped = (" (the database's usable slots, shared pro rata)" if lim.connections < lim.asks else
                      " (PgBouncer's server pool)")
            held = f"the {have} connections its {pods(n, svc.pool.max)} can get" + (
                capped if min(n * svc.pool.max, lim.connections) < n * svc.pool.max else "") + (
                f" ({leaked} more leaked before the run)" if leaked else "")
            if need > most:
                status = WARN if incident else FAIL
                why = (f"more than {held}" + (f" and the {most} its autoscaler's {lim.pods} pods could" if most > have
                                              else "")
                       + ": the pool queues" + (" while it lasts" if incident else " and the queue grows"))
            elif need > have:
                status, why = WARN, (f"more than {held}: only the autoscaler's pods (up to {most} connections) serve"
                                     f" it, once started ({duration(svc.pod.startup)})")
            elif need > share * have:
                status, why = WARN, f"above {share:.0%} of {held}: pool_saturation fires, no room for a slow day"
            else:
                status, why = OK, f"within {held}"
            out.append(Finding("little_law", name, status,
                               f"{name} at {when}: {rate:g} req/s x {duration(hold)} = {need:.3g}"
                               f" connection{'' if need == 1 else 's'} in use, {why}",
                               {"when": when, "rate": rate, "hold_s": round(hold, 6), "concurrency": round(need, 6),
                                "pods": n, "connections": have, "most": most}))
    return out


# ---------------------------------------------------------------- the event loop


def loop_cpu_s(svc: ServiceConfig) -> float:
    """Event-loop CPU seconds per request: its own, and one result per statement (mean over the mix)."""
    total = sum(ep.weight for ep in svc.endpoints.values())
    statements = sum(ep.weight / total * ep.statements for ep in svc.endpoints.values())
    return svc.pod.cpu_per_request + statements * svc.pod.query_result_cpu


def event_loop(sc: Scenario, a: Arithmetic) -> list[Finding]:
    """Per service and point in time: rate x event-loop CPU per request against the pods' loops (one core each)."""
    share, out = sc.analysis.pool_saturation_share, []
    for name, svc in sc.services.items():
        if svc.serverless is not None:
            continue  # one request per instance: its loop never queues requests
        cpu = loop_cpu_s(svc)
        for when, t, rate, _, incident in _points(sc, name, svc):
            if incident:
                continue  # a slow query holds a connection, not the loop
            n = _replicas_at(svc, t)
            most = svc.autoscaler.max_replicas if svc.autoscaler is not None else n
            need = rate * cpu
            its = "its pod's" if n == 1 else f"its {n} pods'"
            if need > most:
                status, why = FAIL, (f"more than the event loops of {most} pod{'' if most == 1 else 's'} can run"
                                     " (one core each)"
                                     + (f", even at the autoscaler's {most}" if most > n else "")
                                     + ": the loops fall behind, and every result, release, timer and probe with them")
            elif need > n:
                status, why = WARN, (f"more than {its} event loops: only the autoscaler's pods (up to {most})"
                                     f" serve it, once started")
            elif need > share * n:
                status, why = WARN, (f"above {share:.0%} of {its} event loops: the lag a timer sees grows as"
                                     f" rho / (1 - rho), and a liveness probe's timeout is near")
            else:
                status, why = OK, f"within {its} event loops"
            out.append(Finding("event_loop", name, status,
                               f"{name} at {when}: {rate:g} req/s x {duration(cpu)} of event-loop CPU = {need:.3g}"
                               f" core{'' if need == 1 else 's'}, {why}",
                               {"when": when, "rate": rate, "cpu_s": round(cpu, 9), "cores": round(need, 6),
                                "pods": n, "most": most}))
    return out


def pod_memory(sc: Scenario, a: Arithmetic) -> list[Finding]:
    """Per service with `pod.memory_limit_mb`, at the base rate and each phase: the requests a pod holds while
    the database stalls (each attempt waits out the acquire timeout, and is retried) against the container's
    limit: the article's "a 5-second acquire timeout wedges your Node event loop with waiting promises"."""
    out = []
    for name, svc in sc.services.items():
        pod = svc.pod
        if svc.serverless is not None or pod.memory_limit_mb <= 0:
            continue
        wait = svc.pool.acquire_timeout
        tries = svc.client.max_attempts if "acquire_timeout" in svc.client.retry_on else 1
        for when, t, rate, _, incident in _points(sc, name, svc):
            if incident:
                continue
            n = max(1, _replicas_at(svc, t))
            held = rate / n * tries * wait if wait > 0 else math.inf
            mb = pod.memory_base_mb + held * pod.request_memory_kb / 1024
            words = (f"{name} at {when}: if the database stalls, each of its {n} pod{'' if n == 1 else 's'} holds "
                     + (f"{rate / n:g} req/s x {tries} attempt{'' if tries == 1 else 's'} x the {duration(wait)}"
                        f" acquire timeout = {held:,.0f} requests, x {pod.request_memory_kb:g} KB +"
                        f" {pod.memory_base_mb:g} MB at rest = {mb:,.0f} MB" if wait > 0 else
                        "every request that arrives: the acquire timeout is 0 (forever), and a waiter outlives"
                        " its caller"))
            if mb > pod.memory_limit_mb:
                status, why = FAIL, (f"above its {pod.memory_limit_mb:g} MB limit: OOMKilled with all of them (the"
                                     " article: a 5 s acquire timeout wedges the event loop with waiting promises;"
                                     " shrink it)")
            elif mb > sc.analysis.pool_saturation_share * pod.memory_limit_mb:
                status, why = WARN, (f"above {sc.analysis.pool_saturation_share:.0%} of its {pod.memory_limit_mb:g} MB"
                                     " limit: the requests queued for the event loop or in a statement come on top")
            else:
                status, why = OK, f"within its {pod.memory_limit_mb:g} MB limit"
            out.append(Finding("pod_memory", name, status, f"{words}, {why}",
                               {"when": when, "rate": rate, "pods": n, "attempts": tries,
                                "held": None if math.isinf(held) else round(held, 3),
                                "memory_mb": None if math.isinf(mb) else round(mb, 3),
                                "limit_mb": pod.memory_limit_mb}))
    return out
