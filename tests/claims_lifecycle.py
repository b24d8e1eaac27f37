"""Claims about how long things live: connections that never retire (14), a pod's memory under a long
acquire timeout (50), and a pod's end (68)."""
from __future__ import annotations

import math

import numpy as np
from claims import PARTLY, Claim, between, clock, first, n, svc
from claims_opening import PS

ROTATE = "services.api.pool.max_lifetime=120s"
LEAKY_ROLE = ("services.api.endpoints.open_notification.set_role=true",
              "services.api.endpoints.open_notification.role_leak_rate=0.01")


def _rotation(run):
    kept, rotated = run("backend_bloat"), run("backend_bloat", ROTATE)
    peak = [next(e.detail for e in r.events if e.kind == "db_memory_peak").split("held at most ")[1].split(" (")[0]
            for r in (kept, rotated)]
    swap = first(kept, "db_swap")
    roles = [svc(run(PS, *LEAKY_ROLE, *extra))["foreign_role"]
             for extra in ((), ("services.api.pool.max_lifetime=60s",))]
    return (f"backend_bloat, backends that grow with every statement: no rotation: swaps at {clock(swap)}, peak"
            f" {peak[0]}, {n(svc(kept)['failures_total'])} failed, {kept.summary['outcome']}; max_lifetime = 120 s:"
            f" peak {peak[1]}, {n(svc(rotated)['failures_total'])} failed, {rotated.summary['outcome']}. A SET ROLE"
            f" left on 1 % of push_spike's checkouts: {n(roles[0])} requests under another tenant's role, {n(roles[1])}"
            f" with max_lifetime = 60 s",
            not math.isnan(swap) and math.isnan(first(rotated, "db_swap"))
            and svc(rotated)["failures_total"] == 0 and roles[1] <= roles[0])


NO_RETRIES = "services.api.client.max_attempts=1"
SMALL_POD = "services.api.pod.memory_limit_mb=128"


def _waiting_promises(run):
    long, short = (run(PS, NO_RETRIES, SMALL_POD, f"services.api.pool.acquire_timeout={t}") for t in ("5s", "1s"))
    killed = [e for e in long.events if e.kind == "oom_killed"]
    kills = [svc(r)["oom_kills"] for r in (long, short)]
    detail = killed[0].detail.split("OOMKilled: ", 1)[1].split(";")[0] if killed else "none"
    return (f"a 128 MB pod, retries off: acquire 5 s: OOMKilled {kills[0]} times (the first at"
            f" {clock(killed[0].time) if killed else '-'}: {detail}), {n(svc(long)['failures_total'])} failed;"
            f" acquire 1 s: {kills[1]} kills, {n(svc(short)['failures_total'])} failed",
            kills[0] > 0 and kills[1] == 0 and svc(long)["failures_total"] > svc(short)["failures_total"])


SCALE_DOWN = ("services.api.pod.replicas=4", 'services.api.pod.schedule=[{at="4m", replicas=2}]')
LOST = ('incidents=[{kind="node_lost", start="2m30s", end="8m10s", services=["api"]}]',)
FAST_KEEPALIVE = ("database.tcp_keepalives_idle=60s", "database.tcp_keepalives_interval=10s",
                  "database.tcp_keepalives_count=3")


def _graceful(run):
    cut = [svc(run("slow_query", *SCALE_DOWN, f"services.api.pod.graceful_shutdown={g}"))["failures"]["pod_crashed"]
           for g in ("true", "false")]
    lost, fast = run(PS, *LOST), run(PS, *LOST, *FAST_KEEPALIVE)
    left = next(e.detail for e in lost.events if e.kind == "pod_lost").split(", ")[-1]
    iit = [between(r, "db_idle_in_transaction", 160, 720) for r in (lost, fast)]
    freed = 160 + int(np.argmax(iit[1] < 2)) if (iit[1] < 2).any() else None
    return (f"slow_query, 4 -> 2 pods during the incident: with the handler {cut[0]} requests cut, without it"
            f" {n(cut[1])} cut at once (pod_crashed); either way the kernel closes the sockets. A node lost at 2:30"
            f" on push_spike: {left}, still held at 12:00 ({iit[0][-1]:.0f} idle in transaction); with"
            f" tcp_keepalives_idle 60 s, 3 probes 10 s apart: freed by {clock(freed) if freed else 'never'}",
            cut[0] == 0 and cut[1] > 0 and iit[0][-1] >= 8 and freed is not None)


CLAIMS = [
    Claim(14, "`maxLifetimeSeconds` rotation: the junk of long-lived connections (stray session settings,"
              " temp tables, backend bloat) never gets bad enough to notice",
          f"backend_bloat (± `--set {ROTATE}`); push_spike `--set ...open_notification.set_role=true --set"
          " ...role_leak_rate=0.01` (± `pool.max_lifetime=60s`)", _rotation, why=(
              "The bloat is modelled as a backend's caches growing with the statements it runs (catalog and"
              " relation caches, temp tables), freed only when the backend exits; backend_bloat grows them about 30"
              " times faster than a real backend (hours to days), so its 120 s of max_lifetime stand for the"
              " article's hour. A stray SET ROLE barely matters on push_spike: the next request that sets its own"
              " role resets it, and idle_timeout closes connections often."), slow=True),
    Claim(50, "A 5 s acquire timeout \"wedges your Node event loop with waiting promises\"",
          f"push_spike `--set {NO_RETRIES} --set {SMALL_POD} --set services.api.pool.acquire_timeout=5s` (/ `=1s`)",
          _waiting_promises, PARTLY,
          "Every request a pod holds keeps memory (`pod.request_memory_kb`, 16 KB: the request and response, the"
          " socket, the closure and promise, the pool's queue entry and timer), and a pod holds about rate x"
          " acquire timeout waiters: past `pod.memory_limit_mb` the kernel kills it with all of them. What the"
          " model leaves out is the wedge before the kill: V8's collector working harder as the heap nears its"
          " limit (its CPU per allocated byte is roughly flat until then), and each failure's error path (the"
          " Error, the catch, the 500, the log line) beyond the attempt's `cpu_per_request`. With retries on,"
          " push_spike's pod is OOMKilled at 1 s too: the retries' backlog on the loop holds requests as the"
          " waiters do (claim 49). `spiralsim check` does the arithmetic before a run (its `pod_memory` rule:"
          " rate per pod x attempts x acquire timeout x 16 KB against the limit).", slow=True),
    Claim(68, "Graceful shutdown: pool.end() on SIGTERM",
          "slow_query `--set services.api.pod.replicas=4 --set 'services.api.pod.schedule=[{at=\"4m\","
          " replicas=2}]'` ± `services.api.pod.graceful_shutdown=false`; push_spike `--set 'incidents=[{kind="
          "\"node_lost\", start=\"2m30s\", end=\"8m10s\", services=[\"api\"]}]'` (± `database.tcp_keepalives_idle"
          "=60s ...`)", _graceful, why=(
              "What the handler saves is the requests in flight: a process that exits on SIGTERM without it cuts"
              " them, but the kernel still closes its sockets, so the server ends its sessions at once either way"
              " (PostgreSQL sees the end of the socket). Sessions are left behind only when no FIN is sent: a"
              " node lost with the pod. No handler helps then; the server's keepalive settings decide how long"
              " the sessions, their transactions and their locks stay (2 h 11 min by Linux's defaults)."),
          slow=True),
]
