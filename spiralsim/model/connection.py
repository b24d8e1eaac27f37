"""One physical connection: the pool's state of it, and the server's state of its session.

Shared by the pool (which hands it out), the sessions (which track its transaction)
and the database (which runs its statements); it points to none of them, only to
its service's recording and to the callback the pool answers a server's FATAL with.
Behind PgBouncer a pool's connection is a *client* connection and the session is on
the *server* connection PgBouncer links it to (`server`; see `pgbouncer.py`).

`Connector` is what a pool connects to: the database itself, or a PgBouncer.
"""
from __future__ import annotations

from typing import Callable, Protocol

from ..metrics import Recorder, ServiceSeries

CONNECTING, IDLE, BUSY, CLOSED = 0, 1, 2, 3


class Connector(Protocol):
    """What a pool connects to (the `Database`, or a `PgBouncer` in front of it): a connect
    claims a slot (or is refused), takes `connect_delay()`, then is `opened` or its refusal
    noted; a closed connection is `closed_by_client`, one whose client host vanished without a
    word `lost_by_client`, a connect given up `free_slot`."""

    recorder: Recorder

    def try_take_slot(self, series: ServiceSeries) -> tuple[str, str] | None: ...

    def connect_delay(self) -> float: ...

    def note_refusal(self, service: str, refusal: tuple[str, str]) -> None: ...

    def free_slot(self, series: ServiceSeries) -> None: ...

    def opened(self, conn: "Connection") -> None: ...

    def closed_by_client(self, conn: "Connection") -> None: ...

    def lost_by_client(self, conn: "Connection") -> None: ...


class Connection:
    """One physical connection of a pool, and what the server knows of its session:
    `tx` (an open transaction), `iit` (idle in transaction), `stmt` (a running statement),
    `dead` (the server ended it; the client may not know yet), `leaked` (never released),
    `role` (a SET ROLE left on the session by a request that did not RESET it), `last_io` (when the
    server last heard from the client: its connect or its last statement's end; for keepalive).

    `server` is the connection whose session its statements run on: itself when it goes
    straight to the database; behind PgBouncer the server connection it is linked to,
    None while it has none, and itself again once PgBouncer has closed it (dead: a
    statement on it fails at once). A PgBouncer server connection's `client` is the
    client connection linked to it (None while idle)."""

    __slots__ = ("state", "uses", "idle_since", "idle_timer", "expired", "refusal", "series", "on_server_end",
                 "id", "tx", "iit", "iit_since", "stmt", "dead", "leaked", "dead_counted", "server", "client",
                 "role", "last_io")

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
        self.server: Connection | None = self
        self.client: Connection | None = None
        self.role = False  # the session runs under a role a request SET and did not RESET
        self.last_io = 0.0
