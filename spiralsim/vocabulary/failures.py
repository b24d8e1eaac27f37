"""The ways a request can fail: one row per kind, read by the client (retry or not,
the text), the recording (one counter each), the summary, the console and the dashboard."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FailureKind:
    """One failure kind: `failures_NAME` in timeseries.csv, `failures.NAME` in summary.json."""

    name: str
    text: str        # what the code reports for it (the first_failure event's detail)
    retryable: bool  # by default (`client.retry_on`) a client with attempts left tries again: timeouts, 5xx
    colour: str      # its band in the dashboard's failures panel

    @property
    def column(self) -> str:
        """Its timeseries.csv column (and the recording's per-bucket counter)."""
        return "failures_" + self.name


#: In column order. A statement error is the app's 4xx (bad input, a constraint): not retried; nor is
#: what the client's own defences refuse (the breaker, throttling), which would defeat them.
FAILURE_KINDS: tuple[FailureKind, ...] = (
    FailureKind("acquire_timeout", "Error: timeout exceeded when trying to connect", True, "#1f77b4"),
    FailureKind("connect_timeout", "Error: Connection terminated due to connection timeout", True, "#aec7e8"),
    FailureKind("too_many_clients", "FATAL 53300: the database refused a new connection", True, "#d62728"),
    FailureKind("client_timeout", "the client gave up waiting and will retry if it may", True, "#ff7f0e"),
    FailureKind("upstream_timeout", "504 Gateway Timeout from the load balancer", True, "#ffbb78"),
    FailureKind("no_ready_pod", "503 Service Unavailable: no ready pod", True, "#7f7f7f"),
    FailureKind("too_many_instances", "429 TooManyRequestsException: the function's concurrency limit is reached",
                True, "#c7c7c7"),
    FailureKind("pod_crashed", "502 Bad Gateway: the pod crashed", True, "#8c564b"),
    FailureKind("statement_timeout", "57014 canceling statement due to statement timeout", True, "#9467bd"),
    FailureKind("query_timeout", "Error: Query read timeout (the client's query_timeout; the server goes on)",
                True, "#dd5c8e"),
    FailureKind("statement_error", "the statement failed (bad input or a constraint)", False, "#c5b0d5"),
    FailureKind("connection_terminated", "Connection terminated unexpectedly", True, "#e377c2"),
    FailureKind("transient_error", "40001 could not serialize access (or a deadlock victim, a reset connection):"
                " a retry can cure it", True, "#f7b6d2"),
    FailureKind("circuit_open", "the client's circuit breaker is open: refused without trying", False, "#bcbd22"),
    FailureKind("throttled", "refused by the client's adaptive throttling, without trying", False, "#dbdb8d"),
    FailureKind("shed", "503 Service Unavailable: shed above max_inflight", True, "#17becf"),
    FailureKind("concurrency_limited", "503 Service Unavailable: above the pod's adaptive concurrency limit", True,
                "#9edae5"),
    FailureKind("query_wait_timeout", "ERROR: query_wait_timeout (PgBouncer found no server connection in time)",
                True, "#393b79"),
    FailureKind("pgbouncer_refused", "ERROR: PgBouncer refused the client (max_client_conn, or"
                " server_login_retry after a failed server login)", True, "#6b6ecf"),
)

#: Kinds refused at once, before any work: counted per attempt even when a retry later succeeds.
REFUSED_AT_ONCE: tuple[str, ...] = ("circuit_open", "throttled", "shed", "concurrency_limited")

#: A kind's position in FAILURE_KINDS (the recording's counters are in that order).
KIND_INDEX: dict[str, int] = {k.name: i for i, k in enumerate(FAILURE_KINDS)}
