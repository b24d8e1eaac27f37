"""The kinds of rows in events.csv: one row per kind, read by the report (which rows
it groups, whose figures it shows) and the dashboard (which it marks, how)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class EventKind:
    """One `kind` of events.csv.

    `colour` is its line on the dashboard (None: not marked, because it is shaded as
    a window or too frequent), `label` the dashboard's short text; `grouped`: the
    report's timeline folds consecutive rows of it into one; `database`: the
    timeline shows the database's figures beside it; `in_timeline`: False for rows
    too frequent for the report (every HPA period) or told with another row.
    """

    name: str
    meaning: str
    colour: Optional[str] = "dimgray"
    label: str = ""
    grouped: bool = False
    database: bool = False
    in_timeline: bool = True


EVENT_KINDS: dict[str, EventKind] = {e.name: e for e in (
    EventKind("incident_start", "an incident's window begins", colour=None),
    EventKind("incident_end", "an incident's window ends", colour=None),
    EventKind("phase_start", "a traffic phase begins", colour=None),
    EventKind("phase_end", "a traffic phase ends", colour=None),
    EventKind("first_pool_waiting", "a caller queues in one of the service's pools, the first time",
              label="first pool wait"),
    EventKind("first_failure", "the first request of the service to end with a failure kind",
              label="first failure"),
    EventKind("first_refused_connect", "the database refuses its first connection (too many clients)",
              colour="darkred", label="first refused connect", database=True),
    EventKind("db_swap", "the database's memory passes its RAM for the first time: statements slow down",
              colour="darkred", label="database swaps", database=True),
    EventKind("db_memory_peak", "the most the database's memory held as a statement started (with memory_mb"
              " set), told at the run's end", colour=None, label="memory peak", database=True),
    EventKind("first_leak", "the service's first leaked client", colour="tab:pink", label="first leak"),
    EventKind("first_orphan", "the service's first transaction released without COMMIT",
              colour="tab:pink", label="first orphan"),
    EventKind("pool_error", "'error' on a pod's pool (a server-terminated idle connection)",
              colour="firebrick", label="pool error", grouped=True),
    EventKind("client_error", "'error' on a pod's checked-out client", colour="firebrick",
              label="client error", grouped=True),
    EventKind("schedule", "a pod.schedule step sets the replica count", colour="tab:cyan", label="schedule"),
    EventKind("scale_up", "the autoscaler raises the replica count", colour="tab:green", label="scale up",
              grouped=True),
    EventKind("scale_down", "the autoscaler lowers the replica count", colour="tab:olive", label="scale down",
              grouped=True),
    EventKind("scale_hold", "the autoscaler keeps the replica count", colour=None, in_timeline=False),
    EventKind("pod_ready", "a pod created during the run becomes ready (or ready again after its readiness"
              " probe failed)", colour=None, label="pod ready",
              grouped=True),
    EventKind("pod_crash", "a pod crashes", colour="tab:red", label="crash", grouped=True),
    EventKind("oom_killed", "the kernel kills a pod whose memory passed its limit (it restarts like a crash)",
              colour="darkred", label="OOMKilled", grouped=True),
    EventKind("pod_lost", "a node is lost with the pod: nothing answers its requests, the server keeps its sessions",
              colour="black", label="pod lost", grouped=True),
    EventKind("pod_evicted", "the control plane deletes a lost node's pod; the deployment replaces it",
              colour=None, label="evicted", grouped=True),
    EventKind("pod_restart", "a crashed pod starts again after its back-off", colour=None, label="restart",
              grouped=True),
    EventKind("liveness_restart", "the kubelet kills a pod whose liveness probe failed (it restarts like a crash)",
              colour="darkred", label="liveness kill", grouped=True),
    EventKind("pod_unready", "a failed readiness probe takes a pod out of the balancer", colour="tab:gray",
              label="unready", grouped=True),
    EventKind("breaker_open", "the client's circuit breaker opens: attempts are refused at once",
              colour="tab:olive", label="breaker open", grouped=True),
    EventKind("breaker_half_open", "the open breaker lets one trial attempt through", colour=None,
              label="breaker half-open", grouped=True),
    EventKind("breaker_closed", "the breaker closes again: the trial attempt succeeded", colour=None,
              label="breaker closed", grouped=True),
    EventKind("alert_firing", "an alert fires", grouped=True),
    EventKind("alert_resolved", "an alert resolves", colour=None, label="resolved", in_timeline=False),
)}
