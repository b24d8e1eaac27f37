"""PgBouncer between one service's pods and the shared database (1.25's behaviour).

Clients. A pod's `pg.Pool` connects to PgBouncer (a `Connector`, like the database):
a login costs CLIENT_CONNECT_S, since PgBouncer answers it from memory (no fork, no
database slot), and is refused at once above `max_client_conn` ("no more
connections allowed (max_client_conn)").

Servers. PgBouncer opens its server connections lazily, one login at a time (its
`launch_new_connection`), up to `default_pool_size` while clients wait; each is a
real database connect (a slot, `connect_time`, refused with `too_many_clients` on
a full database). A failed server login starts `server_login_retry`: no new
login before it has passed, and while no server connection is open a new client,
or a query finding no idle server, is refused at once (`check_fast_fail`). Server
connections stay open once opened (`server_idle_timeout`, 600 s, and
`server_lifetime`, 3600 s, are not modelled) and are handed out most recently
released first (`server_round_robin = 0`). A server dropped silently by the
network is found on use (no `server_check_query`). Only server connections
count in the database's connections.

Linking. A client gets a server connection when a statement of its needs one
(`find_server` on its first query): the handler asks through `assign`. It gives
it back through `ready` (ReadyForQuery): in `transaction` mode once the server is
outside a transaction again (COMMIT, ROLLBACK, a `pool.query` statement's end), so
a leaked client or an orphaned transaction keeps its server; in `session` mode
only when the client connection closes. A client that finds no idle server waits
in a FIFO queue (`cl_waiting`) up to `query_wait_timeout`, then PgBouncer closes
it. When the database ends a server's session (idle-in-transaction timeout, a
restart), PgBouncer closes the client linked to it; the others stay connected.
Closing a client whose server is inside a transaction closes that server too
("client disconnect while server was not ready").

Gauges, as `SHOW POOLS` names them: `cl_active` (clients logged in and not
waiting: linked, or idle between queries), `cl_waiting`, `sv_active` (linked to
a client), `sv_idle`.
"""
from __future__ import annotations

from collections import deque
from typing import Callable

from simpy import Environment

from ..metrics import ServiceSeries
from ..scenario import PgBouncerConfig
from .connection import BUSY, CLOSED, IDLE, Connection
from .database import Database
from .timer import Deadline, Timer

#: A client login to PgBouncer: TCP and PgBouncer's own authentication, no backend fork.
CLIENT_CONNECT_S = 0.001
MAX_CLIENT_TEXT = "no more connections allowed (max_client_conn)"
LOGIN_RETRY_TEXT = "server login has been failing, try again later (server_login_retry)"
REFUSED = "pgbouncer_refused"

LinkCallback = Callable[[object, "str | None"], None]


class Queued:
    """A client waiting for a server connection (`cl_waiting`); `gone` once it left the queue."""

    __slots__ = ("client", "cb", "arg", "gone")

    def __init__(self, client: Connection, cb: LinkCallback, arg: object):
        self.client = client
        self.cb = cb
        self.arg = arg
        self.gone = False


class PgBouncer:
    """One service's PgBouncer: a `Connector` for its pods' pools, a server pool on the database."""

    def __init__(self, env: Environment, config: PgBouncerConfig, database: Database, series: ServiceSeries,
                 service: str):
        self.env = env
        self.db = database
        self.recorder = database.recorder
        self.series = series
        self.service = service
        self.transaction_mode = config.pool_mode == "transaction"
        self.pool_size = config.default_pool_size
        self.max_client_conn = config.max_client_conn
        self.query_wait_timeout = config.query_wait_timeout
        self.login_retry = config.server_login_retry
        self.clients = 0  # client connections logged in or logging in (what max_client_conn counts)
        self.logged_in: dict[int, Connection] = {}
        self.next_id = 0
        self.servers = 0  # server connections open or logging in (what default_pool_size counts)
        self.in_login: list[Connection] = []  # server logins in flight (one at a time)
        self.idle: list[Connection] = []  # idle servers, the most recently released last
        self.queue: deque[Queued] = deque()
        self.queued: dict[int, Queued] = {}  # waiting clients by id
        self.gone_in_queue = 0
        self.login_failed = False
        self.last_login = 0.0  # when the last server login was launched
        self.retry_pending = False
        self.cl_active = series.cl_active
        self.cl_waiting = series.cl_waiting
        self.sv_active = series.sv_active
        self.sv_idle = series.sv_idle

    # --- the Connector of the pods' pools (client connections) -------------
    def try_take_slot(self, series: ServiceSeries) -> tuple[str, str] | None:
        """A client logs in: refused above max_client_conn, or while server logins fail and no server is open."""
        if self.clients >= self.max_client_conn:
            return (REFUSED, MAX_CLIENT_TEXT)
        if self._fast_fail():
            self._launch()  # (once server_login_retry has passed: nobody waits to make it retry)
            return (REFUSED, LOGIN_RETRY_TEXT)
        self.clients += 1
        return None

    def connect_delay(self) -> float:
        return CLIENT_CONNECT_S

    def note_refusal(self, service: str, refusal: tuple[str, str]) -> None:
        """Nothing for the database to count: the pool counts the service's refused connect."""

    def free_slot(self, series: ServiceSeries) -> None:
        """A client login given up before it completed."""
        self.clients -= 1

    def opened(self, client: Connection) -> None:
        """A client is logged in, with no server connection yet."""
        self.next_id += 1
        client.id = self.next_id
        client.server = None
        self.logged_in[client.id] = client
        self.cl_active.add(self.env.now, 1.0)

    def lost_by_client(self, client: Connection) -> None:
        """A client's node is gone. PgBouncer notices a dead client by its own keepalive (the OS's); the
        model frees it as if closed: a simplification (PgBouncer's own sessions to the server stay sound)."""
        self.closed_by_client(client)

    def closed_by_client(self, client: Connection) -> None:
        """The pool closed a client: it leaves the queue, or gives its server back (closing it when
        inside a transaction)."""
        if self.logged_in.pop(client.id, None) is None:
            return  # PgBouncer had closed it already
        self.clients -= 1
        now = self.env.now
        q = self.queued.pop(client.id, None)
        if q is not None:
            self._leave_queue(q)
            return
        self.cl_active.add(now, -1.0)
        srv = client.server
        if srv is None:
            return
        self._unlink(client, srv)
        if srv.dead:
            self._drop(srv)
        elif srv.tx is not None or srv.stmt is not None:
            self.db.closed_by_client(srv)  # rolls back, frees its slot
            self._drop(srv)
        else:
            self._give(srv)

    # --- linking: the handler's hooks --------------------------------------
    def assign(self, client: Connection, cb: LinkCallback, arg: object) -> None:
        """find_server: link `client` to an idle server and `cb(arg, None)` at once; else queue it
        (FIFO) up to query_wait_timeout; while logins fail with no server open, close it at once."""
        if self.idle:
            srv = self.idle.pop()
            self.sv_idle.add(self.env.now, -1.0)
            self._link(client, srv)
            cb(arg, None)
            return
        if self._fast_fail():
            self._launch()
            self._disconnect(client)
            cb(arg, REFUSED)
            return
        now = self.env.now
        q = Queued(client, cb, arg)
        self.queue.append(q)
        self.queued[client.id] = q
        self.cl_active.add(now, -1.0)
        self.cl_waiting.add(now, 1.0)
        if self.query_wait_timeout > 0:
            Deadline(self.env, self.query_wait_timeout, self._on_wait_timeout, q)
        self._launch()

    def ready(self, client: Connection) -> None:
        """ReadyForQuery after the client's statement or transaction: a server found dead is dropped
        and its client closed; in transaction mode a server outside a transaction goes back."""
        srv = client.server
        if srv.dead:
            self._unlink(client, srv)
            self._drop(srv)
            self._disconnect(client)
        elif self.transaction_mode and srv.tx is None:
            self._unlink(client, srv)
            self._give(srv)

    def _link(self, client: Connection, srv: Connection) -> None:
        client.server = srv
        srv.client = client
        srv.state = BUSY
        self.sv_active.add(self.env.now, 1.0)

    def _unlink(self, client: Connection, srv: Connection) -> None:
        client.server = None
        srv.client = None
        self.sv_active.add(self.env.now, -1.0)

    def _give(self, srv: Connection) -> None:
        """A free server: to the first waiting client, else idle."""
        if self.queued:
            q = self._next_queued()
            now = self.env.now
            self.cl_waiting.add(now, -1.0)
            self.cl_active.add(now, 1.0)
            self._link(q.client, srv)
            q.cb(q.arg, None)
            return
        srv.state = IDLE
        self.idle.append(srv)
        self.sv_idle.add(self.env.now, 1.0)

    def _next_queued(self) -> Queued:
        q = self.queue.popleft()
        while q.gone:
            self.gone_in_queue -= 1
            q = self.queue.popleft()
        del self.queued[q.client.id]
        q.gone = True
        return q

    def _leave_queue(self, q: Queued) -> None:
        q.gone = True
        self.gone_in_queue += 1
        self.cl_waiting.add(self.env.now, -1.0)
        if self.gone_in_queue > 64 and self.gone_in_queue > len(self.queued):
            self.queue = deque(x for x in self.queue if not x.gone)  # nobody served: drop the departed
            self.gone_in_queue = 0

    def _on_wait_timeout(self, timer: Timer) -> None:
        q: Queued = timer.arg
        if q.gone:
            return
        del self.queued[q.client.id]
        self._leave_queue(q)
        self._disconnect(q.client, active=False)
        q.cb(q.arg, "query_wait_timeout")

    def _disconnect(self, client: Connection, active: bool = True) -> None:
        """PgBouncer closes a client (`active`: counted in cl_active, not waiting): its socket is
        gone, a statement on it fails at once."""
        if self.logged_in.pop(client.id, None) is None:
            return
        self.clients -= 1
        if active:
            self.cl_active.add(self.env.now, -1.0)
        client.dead = True
        client.server = client

    # --- server connections ------------------------------------------------
    def _fast_fail(self) -> bool:
        """check_fast_fail: the last server login failed and no server connection is open."""
        return self.login_failed and self.servers == len(self.in_login)

    def _launch(self) -> None:
        """launch_new_connection: one login at a time, up to default_pool_size, and not within
        server_login_retry of a failed one (then again when it has passed, if clients wait)."""
        if self.in_login or self.servers >= self.pool_size:
            return
        now = self.env.now
        if self.login_failed and now - self.last_login < self.login_retry - 1e-9:
            if not self.retry_pending:
                self.retry_pending = True
                Timer(self.env, self.last_login + self.login_retry - now, self._on_retry)
            return
        srv = Connection(self.series, self._server_ended)
        self.servers += 1
        self.in_login.append(srv)
        self.last_login = now
        srv.refusal = self.db.try_take_slot(self.series)
        Timer(self.env, self.db.connect_delay(), self._on_login, srv)

    def _on_retry(self, _timer: Timer) -> None:
        self.retry_pending = False
        if self.queued:
            self._launch()

    def _on_login(self, timer: Timer) -> None:
        srv: Connection = timer.arg
        self.in_login.remove(srv)
        if srv.refusal is not None:
            self.servers -= 1
            srv.state = CLOSED
            self.login_failed = True
            self.db.note_refusal(self.service, srv.refusal)
        else:
            self.login_failed = False
            self.db.opened(srv)
            self._give(srv)
        if self.queued:
            self._launch()

    def _drop(self, srv: Connection) -> None:
        """A server connection leaves the pool (already unlinked)."""
        if srv.state == IDLE:
            self.idle.remove(srv)
            self.sv_idle.add(self.env.now, -1.0)
        srv.state = CLOSED
        self.servers -= 1
        if self.queued:
            self._launch()

    def _server_ended(self, srv: Connection, text: str) -> None:
        """The database ended a server's session (FATAL): PgBouncer drops it and closes its client."""
        if srv.state == CLOSED:
            return
        client = srv.client
        if client is not None:
            self._unlink(client, srv)
        self._drop(srv)
        if client is not None:
            self._disconnect(client)
            client.on_server_end(client, text)

    def server_slots(self) -> int:
        """Database slots its server connections hold: open and alive, or logging in and not refused."""
        linked = sum(1 for c in self.logged_in.values() if c.server is not None and not c.server.dead)
        idle = sum(1 for c in self.idle if not c.dead)
        return linked + idle + sum(1 for c in self.in_login if c.refusal is None)
