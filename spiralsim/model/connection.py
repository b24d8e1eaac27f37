"""One physical connection: the pool's state of it, and the server's state of its session.

Shared by the pool (which hands it out), the sessions (which track its transaction)
and the database (which runs its statements); it points to none of them, only to
its service's recording and to the callback the pool answers a server's FATAL with.
"""
from __future__ import annotations

from typing import Callable

from ..metrics import ServiceSeries

CONNECTING, IDLE, BUSY, CLOSED = 0, 1, 2, 3


class Connection:
    """One physical connection of a pool, and what the server knows of its session:
    `tx` (an open transaction), `iit` (idle in transaction), `stmt` (a running statement),
    `dead` (the server ended it; the client may not know yet), `leaked` (never released)."""

    __slots__ = ("state", "uses", "idle_since", "idle_timer", "expired", "refusal", "series", "on_server_end",
                 "id", "tx", "iit", "iit_since", "stmt", "dead", "leaked", "dead_counted")

    def __init__(self, series: ServiceSeries, on_server_end: Callable[["Connection", str], None]) -> None:
        self.state = CONNECTING
        self.uses = 0
        self.idle_since = 0.0
        self.idle_timer = False
        self.expired = False
        self.refusal: tuple[str, str] | None = None
        self.series = series                # the owning service's recording
        self.on_server_end = on_server_end  # the pool's answer when the server ends the session
        self.id = 0
        self.tx = None
        self.iit = False
        self.iit_since = 0.0
        self.stmt = None
        self.dead = False
        self.leaked = False
        self.dead_counted = False
