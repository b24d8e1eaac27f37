"""Claims 1-27 of the article (14 is in claims_lifecycle.py): the opening, what a pool is, the four knobs,
pool sizing."""
from __future__ import annotations

import numpy as np
from claims import NOT_SIMULATION, PARTLY, Claim, between, clock, col, first, n, svc

from spiralsim.scenario import PoolConfig, ScenarioError, load_scenario
from spiralsim.scenario.database_config import DatabaseConfig

PS = "push_spike"
MAX4 = "services.api.autoscaler.max_replicas=4"
CRASH_LOOP = ("services.api.pod.warm_connections=10", "services.api.pod.require_db_at_start=true")
SPIKE = (120.0, 210.0)  # 2:00-3:30


def _falls_over(run):
    r = run(PS)
    a = svc(r)
    spike_failed = between(r, "failures", 120, 240).sum() / between(r, "arrivals", 120, 240).sum()
    onset = a["impact"]["start_s"] - SPIKE[0]
    return (f"p99 before {a['p99_ms']['before']:.0f} ms; degraded from {clock(a['impact']['start_s'])}, "
            f"{onset:.0f} s into the spike; {spike_failed:.1%} of the requests ending 2:00-4:00 fail",
            a["p99_ms"]["before"] < 200 and onset <= 5 and spike_failed > 0.1)


def _hangs_then_errors(run):
    r = run(PS)
    a = svc(r)
    text = next(e.detail for e in r.events if e.kind == "first_failure" and e.service == "api")
    answered = between(r, "successes", 140, 160).sum()
    arrived = between(r, "arrivals", 140, 160).sum()
    return (f"first failure {clock(first(r, 'first_failure', 'api'))}: \"{text.split(': ', 1)[1]}\"; from 2:20 to 2:40 "
            f"the first pod answers {n(answered)} of {n(arrived)} arrivals; {n(a['failures']['acquire_timeout'])} "
            f"acquire timeouts, the largest kind, of {n(a['failures_total'])} failed",
            "timeout exceeded when trying to connect" in text and answered < 0.05 * arrived
            and a["failures"]["acquire_timeout"] == max(a["failures"].values()))


def _autoscaling_worse(run):
    scaled, capped = svc(run(PS)), svc(run(PS, MAX4))
    return (f"1 -> {scaled['pods_max']} pods: {n(scaled['failures_total'])} failed; max_replicas = 4: "
            f"{n(capped['failures_total'])} ({scaled['failures_total'] / capped['failures_total']:.2f}x);"
            f" failed + slow "
            f"{n(scaled['impact']['failed'] + scaled['impact']['slow'])} against "
            f"{n(capped['impact']['failed'] + capped['impact']['slow'])}",
            scaled["pods_max"] >= 3 and scaled["failures_total"] > capped["failures_total"])


def _db_cpu(run):
    r = run(PS)
    cpu = between(r, "db_cpu", *SPIKE).mean()
    return (f"database CPU {cpu:.0%} over the spike (2:00-3:30)", abs(cpu - 0.40) <= 0.15)


def _wall_of_iit(run):
    r = run(PS)
    stmt = np.nanmax(between(r, "statement_p99_ms", *SPIKE))
    peak = r.summary["database"]["peak_idle_in_transaction"]
    at_start = col(r, "db_idle_in_transaction")[0]
    return (f"{at_start:.0f} sessions idle in transaction from the start (leaked), {peak} at the peak; statements' "
            f"p99 at most {stmt:.0f} ms in any second of the spike",
            peak >= 10 and at_start > 0 and stmt < 1000)


def _connect_cost(_run):
    d = DatabaseConfig()
    total = d.connect_time + d.connect_cpu
    return (f"defaults: connect_time {d.connect_time * 1000:.0f} ms (TCP, TLS) + connect_cpu {d.connect_cpu * 1000:.1f}"
            f" ms (fork, SCRAM) + the postmaster's queue", 0.010 <= total <= 0.100)


def _fresh_per_request(run):
    pooled = svc(run("slow_query", "incidents.0.factor=1"))
    fresh = svc(run("slow_query", "incidents.0.factor=1", "services.api.pool.max_uses=1"))
    return (f"mean latency {pooled['latency_ms']['mean']:.1f} ms pooled, {fresh['latency_ms']['mean']:.1f} ms with a"
            f" new connection per checkout (max_uses = 1)",
            fresh["latency_ms"]["mean"] > 3 * pooled["latency_ms"]["mean"])


def _waits_or_rejected(run):
    a = svc(run(PS))
    shed = svc(run(PS, "services.api.pod.max_inflight=50"))
    return (f"peak {n(a['peak_pool_waiting'])} callers waiting; with pod.max_inflight = 50,"
            f" {n(shed['failures']['shed'])} rejected at once (shed)",
            a["peak_pool_waiting"] > 0 and shed["failures"]["shed"] > 0)


def _blip(run):
    r = run("db_restart", "incidents.0.kind=network_blip", "services.api.pod.crash_on_pool_error=false")
    a = svc(r)
    kinds = ", ".join(f"{k} {n(v)}" for k, v in a["failures"].items() if v)
    return (f"a silent drop, no error to anyone: {n(a['failures_total'])} failed ({kinds}), {a['crashes']} crashes:"
            f" the pool hands out connections the server no longer answers", a["failures_total"] > 0
            and a["crashes"] == 0 and not any(e.kind in ("pool_error", "client_error") for e in r.events))


def _max_default(run):
    return (f"pool.max default {PoolConfig().max}; push_spike's 10 connections queue "
            f"{n(svc(run(PS))['peak_pool_waiting'])} callers", PoolConfig().max == 10)


def _forever(run):
    s = run("retry_storm").summary
    return (f"acquire_timeout default {PoolConfig().acquire_timeout:g} (forever); retry_storm: {s['outcome']}, "
            f"{svc(run('retry_storm'))['failures_total'] / svc(run('retry_storm'))['requests']:.1%} failed",
            PoolConfig().acquire_timeout == 0 and s["outcome"] == "metastable")


def _one_to_five(run):
    fast = run("retry_storm", "services.api.pool.acquire_timeout=1s").summary
    slow = run("retry_storm", "services.api.pool.acquire_timeout=3s").summary
    return (f"clients give up at 2 s: acquire 1 s {fast['outcome']}, 3 s {slow['outcome']}",
            fast["outcome"] in ("recovered", "stable") and slow["outcome"] == "metastable")


def _idle_timeout(run):
    r = run(PS)
    end = between(r, "pool_total", 210, 212).mean()
    later = between(r, "pool_total", 240, 242).mean()
    return (f"idle_timeout default {PoolConfig().idle_timeout:g} s; api's pools hold {end:.0f} connections as the push "
            f"ends (3:30), {later:.0f} at 4:00", PoolConfig().idle_timeout == 10 and later < 0.6 * end)


def _eight_pods_fit(run):
    s = run(PS, "services.api.autoscaler.max_replicas=8", "services.reports.pool.min=0",
            "services.reports.pod.warm_connections=0").summary
    return (f"api up to {svc_pods(s)} pods, database peak {s['database']['peak_connections']} of 100, "
            f"{s['database']['refused_connects']} refused", s["database"]["refused_connects"] == 0)


def svc_pods(summary: dict) -> int:
    return summary["services"]["api"]["pods_max"]


def _crash_loop(run):
    s = run(PS, *CRASH_LOOP).summary
    return (f"12 x 10 + 50 = 170: {n(s['database']['refused_connects'])} refused connects, "
            f"{svc_pods(s)} pods, {s['services']['api']['crashes']} crashes (CrashLoopBackOff)",
            s["database"]["refused_connects"] > 0 and s["services"]["api"]["crashes"] > 0)


def _stabilises_when_traffic_drops(run):
    a = svc(run(PS))
    return (f"the impact ends at {clock(a['impact']['end_s'])}, after the push (3:30)",
            a["impact"]["end_s"] >= SPIKE[1])


def _unchanged_service_fails(run):
    s = run("shared_database").summary
    an, orders = s["services"]["analytics"], s["services"]["orders"]
    return (f"analytics (unchanged) {n(an['failures_total'])} failed, {n(an['failures']['too_many_clients'])} refused; "
            f"orders (scaled) {n(orders['failures_total'])}",
            an["failures"]["too_many_clients"] > 0 and orders["failures_total"] < an["failures_total"])


def _rule(run):
    s, fit = run(PS).summary, run(PS, "services.api.autoscaler.max_replicas=3").summary
    return (f"12 x 10 + 50 = 170: {s['arithmetic']['verdict']}; 3 x 10 + 50 = 80: {fit['arithmetic']['verdict']},"
            f" {fit['database']['refused_connects']} refused",
            s["arithmetic"]["verdict"] == "fails" and fit["arithmetic"]["verdict"] == "holds"
            and fit["database"]["refused_connects"] == 0)


def _reserved(run):
    r = run(PS)
    line = next(e.detail for e in r.events if e.kind == "first_refused_connect")
    return (f"superuser_reserved_connections = {r.scenario.database.superuser_reserved_connections}: \"{line}\"",
            "97 usable by apps" in line)


def _trade_off(run):
    small = svc(run(PS, "services.api.autoscaler.max_replicas=10", "services.api.pool.max=6",
                    "services.reports.pod.replicas=3"))
    big = svc(run(PS, "services.api.autoscaler.max_replicas=5", "services.reports.pod.replicas=3"))
    return (f"others 30: 10 pods x 6 {n(small['failures_total'])} failed, 5 pods x 10 {n(big['failures_total'])}:"
            f" the database picks", small["failures_total"] != big["failures_total"])


#: A 4 GB instance with a quarter of it in shared_buffers and work_mem raised to 64 MB for reports' sorts.
SMALL_SERVER = ("database.memory_mb=4096", "database.shared_buffers_mb=1024", "database.work_mem_mb=64")


def _raise_max_connections(run):
    base, raised = run(PS, *SMALL_SERVER), run(PS, "database.max_connections=200", *SMALL_SERVER)
    swap = [e for e in raised.events if e.kind == "db_swap"]
    held = swap[0].detail.split(" holds ")[1].split(":")[0] if swap else ""
    return (f"on a 4 GB server (work_mem 64 MB): max_connections 100: {n(svc(base)['failures_total'])} failed,"
            f" {n(base.summary['database']['refused_connects'])} refused, no swap; 200: nothing refused, the server"
            f" swaps at {clock(swap[0].time) if swap else '-'} ({held}), {n(svc(raised)['failures_total'])} failed",
            bool(swap) and not any(e.kind == "db_swap" for e in base.events)
            and svc(raised)["failures_total"] > svc(base)["failures_total"])


def _pgbouncer(run):
    s = run("pgbouncer").summary
    return (f"12 pods, {s['database']['refused_connects']} refused connects, database peak "
            f"{s['database']['peak_connections']} (PgBouncer's 30 + reports' 50)",
            s["services"]["api"]["pods_max"] == 12 and s["database"]["refused_connects"] == 0)


def _session_mode(run):
    tx, session = svc(run("pgbouncer")), svc(run("pgbouncer", 'services.api.pgbouncer.pool_mode="session"'))
    return (f"transaction mode {n(tx['failures_total'])} failed; session mode {n(session['failures_total'])}",
            session["failures_total"] > tx["failures_total"])


def _real_concurrency(run):
    base = ("incidents.0.factor=1", "services.api.traffic.rate=200")
    r3, r1 = run("slow_query", *base, "services.api.pool.max=3"), run("slow_query", *base, "services.api.pool.max=1")
    busy = col(r3, "db_active").mean()
    return (f"200 req/s x 5 ms: {busy:.2f} statements running on average; pool 3: {r3.summary['outcome']}, pool 1: "
            f"{r1.summary['outcome']} ({svc(r1)['failures_total'] / svc(r1)['requests']:.1%} failed)",
            0.8 < busy < 1.2 and r3.summary["outcome"] == "stable" and r1.summary["outcome"] != "stable")


def _query_cannot_leak(_run):
    try:
        load_scenario(__import__("claims").ROOT / "scenarios" / "slow_query.toml",
                      ["services.api.endpoints.get_user.leak_on_error=true"])
    except ScenarioError as exc:
        return f"rejected: {str(exc).splitlines()[0]}", True
    return "accepted", False


CLAIMS = [
    Claim(1, "50 req/s is fine; 800 req/s for 90 s and it \"falls over. Not slowly. All at once.\"", "push_spike",
          _falls_over),
    Claim(2, "\"Every request hangs for fifteen seconds, then errors out with `timeout exceeded when trying to"
             " connect`\"", "push_spike", _hangs_then_errors, PARTLY,
          "Every request hangs: from 2:20 to 2:40 the first pod answers almost none. Not every request fails:"
          " a FIFO queue with a 15 s patience serves its head, so those who get a connection waited up to 15 s and"
          " succeed (slow), and after 2:45 the new pods take most of the traffic. That is pg-pool's queue as"
          " written (facts.md: a pending acquire is served in order, its timer removes it)."),
    Claim(3, "\"Your app instance count tripled, autoscaling did its job, and somehow that made everything"
             " worse\"", f"push_spike; `--set {MAX4}`", _autoscaling_worse),
    Claim(4, "\"The database itself looks fine. CPU at 40%\"", "push_spike", _db_cpu),
    Claim(5, "\"No slow queries in pg_stat_activity. Just a wall of idle in transaction you don't remember"
             " opening\"", "push_spike", _wall_of_iit),
    Claim(6, "A fresh connection costs 10-100 ms (TCP, TLS, backend fork, auth)", "the model's defaults",
          _connect_cost),
    Claim(7, "Opening one per request \"would dominate your latency budget\"",
          "slow_query `--set incidents.0.factor=1` (± `services.api.pool.max_uses=1`)", _fresh_per_request, slow=True),
    Claim(8, "All in use: the next caller waits, or is rejected, depending on configuration",
          "push_spike (± `--set services.api.pod.max_inflight=50`)", _waits_or_rejected, slow=True),
    Claim(9, "A connection goes stale when \"a network blip killed it without anyone telling you\"",
          "db_restart `--set incidents.0.kind=network_blip --set services.api.pod.crash_on_pool_error=false`",
          _blip, slow=True),
    Claim(10, "`max`: the 11th caller waits; default 10 in pg", "push_spike", _max_default),
    Claim(11, "`connectionTimeoutMillis` default 0 = wait forever, \"almost never what you want\"", "retry_storm",
          _forever),
    Claim(12, "Set it to 1-5 s, \"less than your upstream timeout, with room to spare\"",
          "retry_storm `--set services.api.pool.acquire_timeout=1s` / `=3s`", _one_to_five, slow=True),
    Claim(13, "`idleTimeoutMillis` shrinks the pool after a spike; default 10 s", "push_spike", _idle_timeout),
    Claim(15, "1 pod x 10 = 10 of 100; the autoscaler takes it to 8 pods, 80 of 100, \"still room\"",
          "push_spike `--set ...max_replicas=8 --set services.reports.pool.min=0 --set"
          " services.reports.pod.warm_connections=0`", _eight_pods_fit, slow=True),
    Claim(16, "A second service's 5 x 10 makes it 130: Postgres refuses, new pods' start-up connects fail, pods"
              " restart in a loop", "push_spike `--set services.api.pod.warm_connections=10 --set"
              " services.api.pod.require_db_at_start=true`", _crash_loop, slow=True),
    Claim(17, "\"The only way the system stabilises is if traffic drops on its own\"", "push_spike",
          _stabilises_when_traffic_drops),
    Claim(18, "The most common cascade, caused by max x pods; the service that changed nothing fails",
          "shared_database", _unchanged_service_fails),
    Claim(19, "The rule: max x max pods + others <= 0.8 x max_connections",
          "push_spike; `--set services.api.autoscaler.max_replicas=3`", _rule, slow=True),
    Claim(20, "The 0.8 leaves room for reserved superuser connections and your psql window", "push_spike",
          _reserved),
    Claim(21, "100 connections, others 30, 10 pods -> max 5, or max 10 and 5 pods: \"the database will pick it for"
              " you, badly\"", "push_spike `--set ...max_replicas=10 --set services.api.pool.max=6 --set"
              " services.reports.pod.replicas=3` / `...max_replicas=5 --set services.reports.pod.replicas=3`",
          _trade_off, slow=True),
    Claim(22, "Raising max_connections is usually wrong: per-backend memory (work_mem x max_connections), swap",
          "push_spike `--set database.max_connections=200` on a 4 GB server: `--set database.memory_mb=4096 --set"
          " database.shared_buffers_mb=1024 --set database.work_mem_mb=64`", _raise_max_connections, PARTLY,
          "The swap cliff depends on the server: with work_mem_per_statement = 2 (two sorts a statement) this"
          " server swaps at 100 too. swap_slowdown (10x) is an estimate, not a measurement; managed services' hard"
          " caps on max_connections are not modelled. `spiralsim check`'s memory rule does the article's worst"
          " case (work_mem x max_connections).", slow=True),
    Claim(23, "PgBouncer in transaction mode multiplexes client connections onto a few backends: \"the math problem"
              " disappears\"", "pgbouncer", _pgbouncer),
    Claim(24, "Session mode \"gives you back the max x pods problem at a different layer\"",
          "pgbouncer `--set services.api.pgbouncer.pool_mode=\"session\"`", _session_mode, slow=True),
    Claim(25, "Transaction mode loses SET, advisory locks, LISTEN/NOTIFY, prepared statements", status=NOT_SIMULATION),
    Claim(26, "Size on real concurrency: 200 req/s x 5 ms = 1 connection, \"maybe 2 or 3 for headroom\"",
          "slow_query `--set incidents.0.factor=1 --set services.api.traffic.rate=200 --set"
          " services.api.pool.max=3` / `=1`", _real_concurrency, slow=True),
    Claim(27, "\"Most services overshoot the pool size by a factor of 5\"", status=NOT_SIMULATION),
]

#: Claim 29 belongs to the leaks section but needs only the scenario loader; it lives here with its helper.
QUERY_CANNOT_LEAK = _query_cannot_leak
