"""What the database sees go wrong in transactions: leaks, orphans, lost writes, lock
waits, sessions the server ends. One row per figure, read by the recording (a counter
per bucket), the time series, the summary, the console and the report."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Trouble:
    """A per-service figure shown only where it is not zero.

    `key` is the per-bucket counter, the timeseries.csv column and the summary.json
    field; a `peak` row is instead the peak of a gauge (summary field only).
    `one`/`many` are the console's words for it, `{n}` the count; `label` is the
    report's row; `group` the console line it goes on (what the app leaks, or what
    the database ends).
    """

    key: str
    one: str
    many: str
    label: str
    peak: bool = False
    group: str = "leaks"


TROUBLE: tuple[Trouble, ...] = (
    Trouble("leaked", "{n} leaked connection", "{n} leaked connections", "leaked connections"),
    Trouble("orphaned", "{n} orphaned transaction", "{n} orphaned transactions", "orphaned transactions"),
    Trouble("foreign_statements", "{n} statement in another request's transaction",
            "{n} statements in another request's transaction", "statements in another request's transaction"),
    Trouble("lost_writes", "{n} request's writes lost", "{n} requests' writes lost",
            "successes whose writes were rolled back"),
    Trouble("foreign_role", "{n} request served under another tenant's role",
            "{n} requests served under another tenant's role",
            "requests served under a role another request SET and did not RESET (another tenant's rows)"),
    Trouble("lock_waits", "{n} lock wait", "{n} lock waits", "statements that waited for an orphan's locks"),
    Trouble("sessions_killed", "{n} session killed idle in transaction", "{n} sessions killed idle in transaction",
            "sessions killed idle in transaction", group="ended by the database"),
    Trouble("terminated", "{n} connection dropped", "{n} connections dropped",
            "connections dropped by the database", group="ended by the database"),
    Trouble("peak_pool_dead", "up to {n} dead client in the pool", "up to {n} dead clients in the pool",
            "peak dead clients in the pool", peak=True),
)

#: The rows that are per-bucket counters (the others are peaks of a gauge).
TROUBLE_COUNTERS: tuple[str, ...] = tuple(t.key for t in TROUBLE if not t.peak)
