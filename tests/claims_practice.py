"""Claims 28-69 of the article (50 and 68 are in claims_lifecycle.py): leaks, timeouts, the death spiral, the
defences, seeing inside the pool, special cases, the sane default."""
from __future__ import annotations

from claims import DISAGREES, NOT_SIMULATION, PARTLY, Claim, between, clock, col, first, n, svc
from claims_opening import PS, QUERY_CANNOT_LEAK

SQ = "slow_query"
INCIDENT = (60.0, 300.0)  # slow_query's bad plan: 1:00-5:00


def _leak_empties(run):
    a = svc(run("leak"))
    return (f"{a['leaked']} clients leaked; {n(a['failures']['acquire_timeout'])} requests time out acquiring",
            a["leaked"] > 0 and a["failures"]["acquire_timeout"] > 0)


def _one_tuesday(run):
    r = run("leak")
    times, timeouts = col(r, "time"), col(r, "failures_acquire_timeout")
    t = times[timeouts > 0][0]
    leak = first(r, "first_leak")
    return (f"first leak at {leak / 3600:.1f} h, the first acquire timeout {t / 3600:.1f} h into the run; outcome "
            f"{r.summary['outcome']}", t - leak > 3600 and r.summary["outcome"] != "stable")


def _helper(run):
    s = run("leak", "services.api.endpoints.transfer.leak_on_error=false").summary
    return (f"with try/finally: {s['outcome']}, {s['services']['api']['leaked']} leaked",
            s["services"]["api"]["leaked"] == 0 and s["outcome"] == "stable")


def _orphan_keeps_locks(run):
    s = run("idle_in_transaction").summary
    return (f"{s['outcome']}: {svc(run('idle_in_transaction'))['lock_waits']} statements waited on the orphan's locks,"
            f" peak {s['database']['peak_idle_in_transaction']} idle in transaction",
            svc(run("idle_in_transaction"))["lock_waits"] > 0 and s["database"]["peak_idle_in_transaction"] > 0)


def _inside_the_orphan(run):
    a = svc(run("idle_in_transaction", "services.api.endpoints.update_cart.orphan_rate=0.001",
                "services.api.endpoints.update_cart.lock_conflict=0"))
    return (f"{n(a['orphaned'])} orphans; {n(a['foreign_statements'])} statements ran inside another request's"
            f" transaction; {n(a['lost_writes'])} writes lost with it", a["foreign_statements"] > 0)


def _four_timeouts(run):
    from spiralsim.analysis.check import check

    lines = [f for f in check(run("retry_storm").scenario) if f.rule == "timeouts_in_order" and f.status == "fail"]
    return (f"acquire, statement, idle-in-transaction, upstream (and the client's) are all keys; check's"
            f" timeouts_in_order fails retry_storm: \"{lines[0].line[:90]}...\"" if lines else "no finding",
            bool(lines))


def _statement_timeout(run):
    sets = ("database.statement_timeout=200ms",)
    as_query = run(SQ, *sets)
    as_tx = run(SQ, *sets, 'services.api.endpoints.get_user.kind="transaction"')
    closes_q, closes_tx = (between(r, "closes", *INCIDENT).sum() for r in (as_query, as_tx))
    return (f"200 ms statement_timeout: pool.query() {n(svc(as_query)['failures']['statement_timeout'])} cancelled,"
            f" {n(closes_q)} connections closed in the incident; pool.connect()"
            f" {n(svc(as_tx)['failures']['statement_timeout'])} cancelled, {n(closes_tx)} closed",
            closes_q > 0 and closes_tx < closes_q / 10)


def _iit_backstop(run):
    s = run("idle_in_transaction", "database.idle_in_transaction_session_timeout=60s").summary
    base = run("idle_in_transaction").summary
    lost = sum(v["lost_writes"] for v in s["services"].values())
    return (f"{base['outcome']} -> {s['outcome']}; the orphan's writes lost: {lost}",
            s["outcome"] in ("recovered", "stable") and base["outcome"] == "stuck")


def _gateway_timeout(run):
    sets = ("incidents.0.factor=8000", "services.api.client.timeout=0", "services.api.client.max_attempts=1",
            "services.api.balancer.upstream_timeout=30s", "services.api.pool.acquire_timeout=0")
    a = svc(run(SQ, *sets))
    return (f"{n(a['failures']['upstream_timeout'])} 504s, {n(a['wasted'])} attempts finished for nobody",
            a["failures"]["upstream_timeout"] > 0 and a["wasted"] > 0)


def _timeouts_in_order(run):
    sets = ("incidents.0.factor=8000", "services.api.client.timeout=0", "services.api.client.max_attempts=1",
            "services.api.balancer.upstream_timeout=30s", "services.api.pool.acquire_timeout=3s",
            "database.statement_timeout=20s")
    a = svc(run(SQ, *sets))
    return (f"3 s + 20 s < 30 s: {n(a['wasted'])} wasted, {n(a['failures']['upstream_timeout'])} 504s",
            a["wasted"] == 0)


def _concurrency_one(run):
    busy = between(run(SQ), "db_active", 0, 60).mean()
    return (f"{busy:.2f} statements running on average before the trigger (100 x 5 ms = 0.5)", 0.3 < busy < 0.8)


def _pool_serves_20(run):
    r = run(SQ)
    in_use = between(r, "pool_in_use", 90, 300).mean()
    waiting = between(r, "pool_waiting", 90, 300).mean()
    good = between(r, "goodput", 90, 300).mean()
    return (f"100 req/s x 500 ms = 50 wanted; {in_use:.1f} of 10 connections in use, {waiting:,.0f} callers waiting"
            f" on average, goodput {good:.1f} req/s (at most 10 / 0.5 s = 20)", in_use > 8 and waiting > 40)


def _retries_multiply(run):
    r = run(SQ)
    att = between(r, "attempts", 90, 300).mean()
    arr = between(r, "arrivals", 90, 300).mean()
    a = svc(r)
    return (f"{att:.0f} attempts/s for {arr:.0f} req/s; p99 {a['p99_ms']['before']:.0f} ms -> "
            f"{a['p99_ms']['during'] / 1000:.1f} s", att > 1.4 * arr and a["p99_ms"]["during"] > 5000)


HPA = ('services.api.autoscaler.signal="latency_p99"', 'services.api.autoscaler.target="200ms"',
       "services.api.autoscaler.max_replicas=20", "services.api.pod.warm_connections=10",
       "services.api.pod.require_db_at_start=true", 'services.api.pod.startup="30s"')


def _half_crash_loop(run):
    s = run(SQ, *HPA).summary
    return (f"{svc_pods(s)} pods, {s['services']['api']['crashes']} crashes, {n(s['database']['refused_connects'])}"
            f" refused, database peak {s['database']['peak_connections']}",
            s["services"]["api"]["crashes"] > 0 and s["database"]["refused_connects"] > 0)


def svc_pods(summary: dict) -> int:
    return summary["services"]["api"]["pods_max"]


def _no_real_failure(run):
    r = run(PS)
    kinds = {e.kind for e in r.events}
    wanted = {"first_pool_waiting", "scale_up", "first_refused_connect", "first_failure"}
    a = svc(r)
    return (f"queue, {n(a['attempts'] - a['requests'])} retries, scale-ups, refused connects: "
            f"{', '.join(sorted(wanted & kinds))}; no component failed", wanted <= kinds and a["retries"] > 0)


def _cap_retries(run):
    four = run(SQ, "services.api.client.max_attempts=4")
    att = between(four, "attempts", 90, 300).mean() / between(four, "arrivals", 90, 300).mean()
    fixed = run("retry_storm", "services.api.client.max_attempts=1").summary
    return (f"4 attempts: {att:.1f} attempts per user in the incident (some succeed before their fourth);"
            f" retry_storm without retries: {fixed['outcome']}",
            att > 3 and fixed["outcome"] in ("recovered", "stable"))


def _jitter(run):
    s = run("retry_storm", 'services.api.client.backoff="exponential"', 'services.api.client.backoff_base="1s"',
            'services.api.client.jitter="full"').summary
    return (f"retry_storm with exponential backoff and full jitter: {s['outcome']}", s["outcome"] == "metastable")


def _breaker(run):
    s = run("retry_storm", "services.api.client.circuit_breaker=true").summary
    return (f"retry_storm with the client's circuit breaker: {s['outcome']}", s["outcome"] in ("recovered", "stable"))


def _acquire_one_second(run):
    fast, base = svc(run(SQ, "services.api.pool.acquire_timeout=1s")), svc(run(SQ))
    return (f"peak waiting {n(fast['peak_pool_waiting'])} (5 s: {n(base['peak_pool_waiting'])}); wasted "
            f"{n(fast['wasted'])} ({n(base['wasted'])})", fast["peak_pool_waiting"] < base["peak_pool_waiting"])


def _errors_not_latency(run):
    fast = run(PS, "services.api.pool.acquire_timeout=1s")
    a = svc(fast)
    return (f"acquire 1 s: p99 during {a['p99_ms']['during'] / 1000:.1f} s, the latency HPA still goes to "
            f"{a['pods_max']} pods; {n(a['failures_total'])} failed (15 s: {n(svc(run(PS))['failures_total'])})",
            a["p99_ms"]["during"] > 1000 and a["pods_max"] > 4)


def _scale_on_cpu(run):
    cpu = svc(run(PS, 'services.api.autoscaler.signal="cpu"', "services.api.autoscaler.target=0.7"))
    queue = svc(run(PS, 'services.api.autoscaler.signal="pool_waiting"', "services.api.autoscaler.target=5"))
    return (f"CPU 70 %: {cpu['pods_max']} pods, {n(cpu['failures_total'])} failed; queue length 5: "
            f"{queue['pods_max']} pods, {n(queue['failures_total'])} failed", queue["pods_max"] == 12)


def _alert_on_errors(run):
    s = run(PS, "services.api.autoscaler.max_replicas=1").summary
    fired = [a["name"] for a in s["alerts"]]
    return (f"no scaling: {n(s['services']['api']['failures_total'])} failed; alerts {', '.join(fired)}",
            "error_rate" in fired)


def _thousands_of_backends(run):
    s = run("pgbouncer").summary
    return (f"12 pods x 10 client connections on {s['services']['api']['peak_db_connections']} server connections",
            s["services"]["api"]["peak_db_connections"] <= 30)


def _creep(run):
    s = run("slow_query_creep").summary
    budget = next(a for a in s["alerts"] if a["name"] == "slow_query_budget")
    start = s["services"]["api"]["impact"]["start_s"]
    return (f"statement p99 budget (200 ms) fires at {clock(budget['fired_at'])}, {start - budget['fired_at']:.0f} s"
            f" before the cliff ({clock(start)}); {n(svc(run('slow_query_creep'))['failures_total'])} fail after it",
            budget["fired_at"] < start and svc(run("slow_query_creep"))["failures_total"] > 0)


def _pool_counters(run):
    r = run(PS)
    cols = ("pool_total", "pool_idle", "pool_waiting")
    return ("per second: " + ", ".join(f"{c} peak {col(r, c).max():.0f}" for c in cols),
            all(c in r.timeseries for c in cols))


def _waiting_alert(run):
    s = run(PS).summary
    alert = next(a for a in s["alerts"] if a["name"] == "pool_waiting")
    start = s["services"]["api"]["impact"]["start_s"]
    return (f"fires at {clock(alert['fired_at'])}, {alert['fired_at'] - start:.0f} s after the impact began",
            alert["fired_at"] >= start)


def _saturation_alert(run):
    s = run(PS).summary
    fired = [(a["name"], a["service"]) for a in s["alerts"]]
    return (f"alerts on push_spike: {', '.join(f'{a} ({b})' if b else a for a, b in fired)}",
            ("pool_saturation", "reports") not in fired)


def _collapse_alert(run):
    fired = {a["name"] for a in run("leak").summary["alerts"]}
    return (f"leak: {', '.join(sorted(fired))}", "pool_collapse" in fired)


def _pg_stat_activity(run):
    s = run("leak").summary
    alert = next(a for a in s["alerts"] if a["name"] == "idle_in_transaction")
    start = s["services"]["api"]["impact"]["start_s"]
    return (f"idle_in_transaction fires at {alert['fired_at'] / 3600:.1f} h, {(start - alert['fired_at']) / 3600:.1f} h"
            f" before the impact", alert["fired_at"] < start)


def _serverless(run):
    s = run("serverless").summary
    return (f"{s['database']['peak_connections']} of {s['database']['max_connections']} connections,"
            f" {n(s['database']['refused_connects'])} refused", s["database"]["refused_connects"] > 0)


def _own_pool(run):
    shared = svc(run("background_jobs"))
    apart = svc(run("background_jobs", "services.api.endpoints.job.weight=0", "services.api.traffic.rate=200",
                    "services.jobs.traffic.rate=0.5"))
    return (f"jobs in api's pool: api {shared['failures_total'] / shared['requests']:.1%} failed; in a pool of"
            f" their own: {apart['failures_total'] / max(1, apart['requests']):.1%}",
            apart["failures_total"] < shared["failures_total"])


def _replicas(run):
    s = run("read_replicas").summary
    return (f"{s['database']['replicas']['count']} replicas, {s['database']['replicas']['peak_connections']} peak"
            f" connections on them, {n(s['services']['api']['failures_total'])} failed",
            s["database"]["replicas"]["count"] > 0)


def _set_role(run):
    a = svc(run(PS, "services.api.endpoints.open_notification.set_role=true",
                "services.api.endpoints.open_notification.role_leak_rate=0.01"))
    return (f"{n(a['foreign_role'])} requests ran under a role another request left", a["foreign_role"] > 0)


def _error_listener(run):
    bare, heard = svc(run("db_restart")), svc(run("db_restart", "services.api.pod.crash_on_pool_error=false"))
    return (f"no listener: {bare['crashes']} crashes, {n(bare['failures']['no_ready_pod'])} no_ready_pod; with one:"
            f" {heard['crashes']} crashes", bare["crashes"] > 0 and heard["crashes"] == 0)


def _sane_default(run):
    from test_stories import FIXED

    fixed = sum(FIXED.values())
    return (f"the sane defaults fix {fixed} of the {len(FIXED)} original stories (sane_defaults.toml's table)",
            fixed < len(FIXED) / 2)


CLAIMS = [
    Claim(28, "Each leak is one fewer connection \"until the pool is empty and every request waits forever\"",
          "leak", _leak_empties),
    Claim(29, "`pool.query()` cannot leak; `pool.connect()` without try/finally leaks on an error",
          "slow_query `--set ...get_user.leak_on_error=true`", QUERY_CANNOT_LEAK),
    Claim(30, "The pool \"empties out over hours or days, and one Tuesday the service falls over\"", "leak",
          _one_tuesday),
    Claim(31, "release() in finally, ROLLBACK in catch: a withTransaction helper fixes it",
          "leak `--set services.api.endpoints.transfer.leak_on_error=false`", _helper, slow=True),
    Claim(32, "`.catch(() => {})` on ROLLBACK; nobody writes pool.connect() outside the helper",
          status=NOT_SIMULATION),
    Claim(33, "Released with the transaction open: idle in transaction, Postgres keeps its locks",
          "idle_in_transaction", _orphan_keeps_locks),
    Claim(34, "The next caller runs inside the orphaned transaction: \"data is sometimes wrong\"",
          "idle_in_transaction `--set ...update_cart.orphan_rate=0.001 --set ...update_cart.lock_conflict=0`",
          _inside_the_orphan, PARTLY, "Statements inside another request's transaction and the writes lost with"
          " it are counted; wrong values are not (the model has no data).", slow=True),
    Claim(35, "Four timeouts (acquire, query, transaction, upstream); most outages come from their order",
          "retry_storm, `spiralsim check`", _four_timeouts),
    Claim(36, "statement_timeout cancels the statement, \"the connection is fine and goes back to the pool\"",
          "slow_query `--set database.statement_timeout=200ms` (± `...get_user.kind=\"transaction\"`)",
          _statement_timeout, DISAGREES,
          "Through pool.connect() the article is right: the statement is cancelled (57014) and the client goes"
          " back to the pool. Through pool.query() it is not: pg-pool releases the client with the query's error,"
          " and a client released with an error is destroyed (pg-pool's release, facts.md §1 [P]), so every"
          " cancelled statement costs a new connection. The model follows pg-pool's code.", slow=True),
    Claim(37, "idle_in_transaction_session_timeout ~60 s is the backstop; \"costs you nothing\"",
          "idle_in_transaction `--set database.idle_in_transaction_session_timeout=60s`", _iit_backstop, PARTLY,
          "The backstop works; it is not free: the orphan's work is rolled back with it (lost writes), and on"
          " `leak` each killed session arrives as an 'error' on a checked-out client, which crashes a pod with no"
          " listener (PostgreSQL terminates the session with FATAL 25P03).", slow=True),
    Claim(38, "Acquire + query > the ALB's 30 s: a 504, and the service works on for nobody",
          "slow_query `--set incidents.0.factor=8000 ... --set services.api.balancer.upstream_timeout=30s`",
          _gateway_timeout, slow=True),
    Claim(39, "Acquire + query + buffer < upstream: 3 s + 20 s = 23 s < 30 s",
          "the same with `...acquire_timeout=3s --set database.statement_timeout=20s`", _timeouts_in_order, slow=True),
    Claim(40, "100 req/s x 5 ms: concurrency around 1, nowhere near the pool", "slow_query", _concurrency_one),
    Claim(41, "5 ms -> 500 ms: concurrency 50 against a pool of 10", "slow_query", _pool_serves_20),
    Claim(42, "Acquire 5 s, clients give up at 3 s and retry: \"150 req/s of attempted work\", p99 to seconds",
          "slow_query", _retries_multiply),
    Claim(43, "The autoscaler adds pods; each opens 10; \"half the pods can't open connections and crash-loop\"",
          "slow_query `--set` a latency HPA up to 20 pods that need 10 connections at start", _half_crash_loop,
          slow=True),
    Claim(44, "No real failure: correct behaviours composed make the outage", "push_spike", _no_real_failure),
    Claim(45, "Cap retries: with three retries \"one bored user occupies four pool slots\"",
          "slow_query `--set services.api.client.max_attempts=4`; retry_storm `--set ...max_attempts=1`",
          _cap_retries, slow=True),
    Claim(46, "Add jitter", "retry_storm `--set ...backoff=\"exponential\" --set ...backoff_base=\"1s\" --set"
          " ...jitter=\"full\"`", _jitter, DISAGREES,
          "Jitter spreads retries in time; it does not lower how many there are. retry_storm's trouble is a queue"
          " that outlives its callers (acquire timeout 0), and the same number of retries, spread, still feed it."
          " The AWS study the advice comes from measured contention among clients, not a pool's queue: both"
          " agree jitter needs a cap on retries (claim 45) to help here.", slow=True),
    Claim(47, "A circuit breaker upstream of the pool so retry storms can't reach it",
          "retry_storm `--set services.api.client.circuit_breaker=true`", _breaker, slow=True),
    Claim(48, "Shrink acquire to 1 s: fail fast, \"the queue stays small\"",
          "slow_query `--set services.api.pool.acquire_timeout=1s`", _acquire_one_second, slow=True),
    Claim(49, "... then \"the autoscaler sees errors instead of latency\"",
          "push_spike `--set services.api.pool.acquire_timeout=1s`", _errors_not_latency, DISAGREES,
          "Fast failures are retried at once, and the retries' CPU saturates the pod's one event loop: results,"
          " releases and the acquire timers wait for it, so latency stays high and the latency HPA scales as"
          " before. Node runs all of them on one thread (facts.md §1); the article's claim needs retries capped or"
          " backed off.", slow=True),
    Claim(51, "Scale on CPU + request queue length, not on response latency",
          "push_spike `--set ...signal=\"cpu\" --set ...target=0.7` / `...signal=\"pool_waiting\" --set"
          " ...target=5`", _scale_on_cpu, DISAGREES,
          "CPU is bounded at 100 %, so it asks for few pods; a queue-length signal grows without bound while the"
          " pool queues, exactly like latency, and takes the deployment to max_replicas. That is the HPA's replica"
          " calculator as written (facts.md §4): only max_replicas x pool.max protects the database.", slow=True),
    Claim(52, "\"Better, you alert on errors and don't scale at all\"",
          "push_spike `--set services.api.autoscaler.max_replicas=1`", _alert_on_errors, slow=True),
    Claim(53, "\"Don't try to hold thousands of direct Postgres backends, you'll lose\": PgBouncer", "pgbouncer",
          _thousands_of_backends),
    Claim(54, "A slow-query budget alert; latency \"creeps up over a week\"; the cliff is sudden, the slope is not",
          "slow_query_creep", _creep),
    Claim(55, "totalCount, idleCount, waitingCount tell you almost everything", "push_spike", _pool_counters),
    Claim(56, "Alert pg_pool_waiting > 0 for 10 s: you're at capacity", "push_spike", _waiting_alert, PARTLY,
          "It fires after the impact has begun: it tells the present, not what is coming."),
    Claim(57, "Alert pg_pool_total / max > 0.8 sustained: close to capacity", "push_spike", _saturation_alert),
    Claim(58, "Alert pg_pool_total collapsing toward zero with traffic: you're leaking", "leak", _collapse_alert),
    Claim(59, "Hook connect/remove/error events; don't log every acquire", status=NOT_SIMULATION),
    Claim(60, "Know pg_stat_activity by state: idle in transaction, used/max", "leak", _pg_stat_activity),
    Claim(61, "pct next to pg_pool_waiting diagnoses 90 % of incidents in 30 s", status=NOT_SIMULATION),
    Claim(62, "Serverless: enough concurrent invocations hit max_connections instantly", "serverless", _serverless),
    Claim(63, "Background jobs get their own small pool so a stuck job can't drain the users' pool",
          "background_jobs; its variant separate_pool", _own_pool, slow=True),
    Claim(64, "Read replicas: one pool per replica", "read_replicas", _replicas),
    Claim(65, "SET ROLE without RESET before release: the next caller inherits the tenant's role",
          "push_spike `--set ...open_notification.set_role=true --set ...role_leak_rate=0.01`", _set_role,
          slow=True),
    Claim(66, "ORMs' pool options are pass-throughs", status=NOT_SIMULATION),
    Claim(67, "Idle pool errors must not crash the process (pool.on('error'))",
          "db_restart; `--set services.api.pod.crash_on_pool_error=false`", _error_listener, slow=True),
    Claim(69, "About 30 lines of sane defaults \"prevent most of the pool incidents in this article\"",
          "sane_defaults; each story with the same settings", _sane_default, DISAGREES,
          "Measured, they fix 2 of the 7 stories (sane_defaults.toml says why for each): they leave out the"
          " sizing arithmetic (max x pods against max_connections) and a cap on retries, which decide the other"
          " five.", slow=True),
]
