"""A node-postgres `pg.Pool` (pg-pool 3.x) in one pod.

As pg-pool's source has it: a caller never overtakes waiters (FIFO queue);
idle connections are handed out most recently released first (LIFO); a new
connection is opened only when nobody waits, none is idle and fewer than `max`
are open; `acquire_timeout` is a *connect* timeout on that path ("Connection
terminated due to connection timeout") and a *queue* timeout for a waiter
("timeout exceeded when trying to connect"); a failed connect goes to its one
caller and is never retried, so against a full database every waiter makes one
more refused connect. Callers are plain callbacks `cb(arg, connection, error)`.
Its timers and connect completions run on the pod's event loop (`loop`): when it is
busy they wait for it, and what they hand over is handed over late.
The pool connects to a `Connector`: the database, or the service's PgBouncer.
"""
from __future__ import annotations

from collections import deque
from typing import Callable

from simpy import Environment

from ..metrics import Level, ServiceSeries, add_opposite
from ..scenario import PoolConfig
from .connection import BUSY, CLOSED, IDLE, Connection, Connector
from .event_loop import EventLoop
from .timer import Deadline, Timer

WAITING, OPENING, GONE = 0, 1, 2

QUEUE_TIMEOUT_TEXT = "timeout exceeded when trying to connect"
CONNECT_TIMEOUT_TEXT = "Connection terminated due to connection timeout"

AcquireCallback = Callable[[object, "Connection | None", "str | None"], None]


class Waiter:
    """A caller of `pool.connect()` between asking and getting an answer."""

    __slots__ = ("cb", "arg", "t0", "state")

    def __init__(self, cb: AcquireCallback, arg: object, t0: float, state: int):
        self.cb = cb
        self.arg = arg
        self.t0 = t0
        self.state = state


class Pool:
    """pg.Pool: `acquire(cb, arg)`, `release(conn, error)`, gauges total/idle/waiting."""

    def __init__(self, env: Environment, config: PoolConfig, connector: Connector, series: ServiceSeries,
                 waiting_level: Level, in_use_level: Level, service: str):
        """`connector`: the database, or PgBouncer. `waiting_level` and `in_use_level` are this
        pod's own gauges (callers waiting, connections checked out or being opened), shared by
        its pools when it has one per read replica; the service's are in `series`."""
        self.env = env
        self.connector = connector
        self.series = series
        self.service = service
        self.inv_bucket = 1.0 / connector.recorder.bucket
        self.max = config.max
        self.min = config.min
        self.acquire_timeout = config.acquire_timeout
        self.idle_timeout = config.idle_timeout
        self.max_lifetime = config.max_lifetime
        self.max_uses = config.max_uses
        self.total = 0
        self.idle: list[Connection] = []
        self.queue: deque[Waiter] = deque()
        self.waiting = 0
        self.gone_in_queue = 0  # waiters that left but still sit in the deque
        self.waiting_level = waiting_level
        self.in_use_level = in_use_level
        self.destroyed = False  # the process ended (crash or pool.end()): every socket closes
        self.frozen = False     # a serverless instance between requests: its timers do not run
        self.refusing = 0       # connects in flight that the server has already refused
        self.on_error = None    # pool.on('error') handler, set by the pod
        self.on_client_error = None  # client.on('error') on a checked-out client, set by the pod
        self.conns: dict[int, Connection] = {}  # open connections by id (for crashes)
        self.replica = None  # the read replica its statements run on (a `Database`; None: the primary)
        self.loop: EventLoop | None = None  # the pod's event loop (None: callbacks run when due)

    # --- gauges ------------------------------------------------------------
    def _total(self, delta: int) -> None:
        self.total += delta
        now = self.env._now
        self.series.pool_total.add(now, delta)
        self.in_use_level.add(now, delta)  # a connection opens or closes checked out

    def _idle(self, now: float, delta: int) -> None:
        add_opposite(now, self.series.pool_idle, self.in_use_level, delta)  # in use: the other way

    def _waiting(self, delta: int) -> None:
        self.waiting += delta
        now = self.env._now
        self.series.pool_waiting.add(now, delta)
        self.waiting_level.add(now, delta)  # (the pod's gauge: its pools' waiters together)

    def _handout(self, w: Waiter, conn: Connection | None, error: str | None) -> None:
        """Answer a caller; its wait (to a connection or an error) feeds the acquire-wait mean."""
        now = self.env._now
        b = int(now * self.inv_bucket)
        series = self.series
        series.acquires[b] += 1.0
        series.acquire_wait_sum[b] += now - w.t0
        w.cb(w.arg, conn, error)

    # --- acquire -----------------------------------------------------------
    def acquire(self, cb: AcquireCallback, arg: object) -> None:
        """pool.connect(): `cb(arg, conn, None)` with a connection, or `cb(arg, None, kind)`."""
        now = self.env._now
        if not self.waiting:
            if self.idle:
                conn = self.idle.pop()
                conn.state = BUSY
                add_opposite(now, self.series.pool_idle, self.in_use_level, -1.0)  # `_idle(now, -1)`, once a request
                self.series.acquires[int(now * self.inv_bucket)] += 1.0
                cb(arg, conn, None)
                return
            if self.total < self.max:
                self._open(Waiter(cb, arg, now, OPENING))
                return
        w = Waiter(cb, arg, now, WAITING)
        self.queue.append(w)
        self._waiting(1)
        self.series.queued[int(now * self.inv_bucket)] += 1.0
        if "waiting" not in self.series.first_failure:
            self.series.first_failure.add("waiting")
            self.connector.recorder.event(now, self.service, "first_pool_waiting",
                                          f"a request queued for a connection ({self.total} of {self.max} open)")
        if self.acquire_timeout > 0.0:
            Deadline(self.env, self.acquire_timeout, self._on_queue_timeout, w)

    def _on_queue_timeout(self, timer: Timer) -> None:
        if self.loop is not None and self.loop.defer(self._on_queue_timeout, timer):
            return
        w: Waiter = timer.arg
        if w.state == WAITING:
            w.state = GONE
            self._waiting(-1)
            self.gone_in_queue += 1
            if self.gone_in_queue > 64 and self.gone_in_queue > self.waiting:
                # Nobody is being served (a pool of leaked clients): drop the departed, or the
                # deque would keep every caller that ever timed out.
                self.queue = deque(x for x in self.queue if x.state == WAITING)
                self.gone_in_queue = 0
            self._handout(w, None, "acquire_timeout")
        elif w.state == OPENING:  # its new connection is still being opened
            w.state = GONE
            self._handout(w, None, "acquire_timeout")

    def _next_waiter(self) -> Waiter:
        q = self.queue
        w = q.popleft()
        while w.state != WAITING:
            self.gone_in_queue -= 1
            w = q.popleft()
        self._waiting(-1)
        return w

    def _pulse(self) -> None:
        """Serve the queue's head while a connection is idle or one more may be opened."""
        while self.waiting and not self.destroyed:
            if self.idle:
                conn = self.idle.pop()
                conn.state = BUSY
                self._idle(self.env._now, -1)
                w = self._next_waiter()
                w.state = GONE
                self._handout(w, conn, None)
            elif self.total < self.max:
                w = self._next_waiter()
                w.state = OPENING
                self._open(w)
            else:
                return

    # --- connect -----------------------------------------------------------
    def _open(self, w: Waiter) -> None:
        conn = Connection(self.series, self.server_terminated)
        self._total(1)
        conn.refusal = self.connector.try_take_slot(self.series)
        if conn.refusal is not None:
            self.refusing += 1  # in the total, yet holding no slot: the refusal is on its way
        delay = self.connector.connect_delay()
        if self.acquire_timeout > 0 and delay > self.acquire_timeout:
            Deadline(self.env, self.acquire_timeout, self._on_connect_timeout, (conn, w))
        else:
            Timer(self.env, delay, self._on_connected, (conn, w))

    def _on_connect_timeout(self, timer: Timer) -> None:
        if self.loop is not None and self.loop.defer(self._on_connect_timeout, timer):
            return
        conn, w = timer.arg
        if conn.refusal is None:
            self.connector.free_slot(self.series)
        else:
            self.refusing -= 1
        self._connect_failed(conn, w, "connect_timeout")

    def _on_connected(self, timer: Timer) -> None:
        if self.loop is not None and self.loop.defer(self._on_connected, timer):
            return
        conn, w = timer.arg
        now = self.env._now
        b = int(now * self.inv_bucket)
        if conn.refusal is not None:
            self.refusing -= 1
            self.series.refused_connects[b] += 1
            self.connector.note_refusal(self.service, conn.refusal)
            self._connect_failed(conn, w, conn.refusal[0])
            return
        self.series.connects[b] += 1
        self.connector.opened(conn)
        self.conns[conn.id] = conn
        if self.destroyed:  # the process died while this connected
            conn.state = BUSY
            self._close(conn)
            return
        if self.max_lifetime > 0:
            Timer(self.env, self.max_lifetime, self._on_lifetime, conn)
        if w.state == OPENING:
            w.state = GONE
            conn.state = BUSY
            self._handout(w, conn, None)
        else:  # its caller timed out meanwhile: pg-pool releases it straight back
            conn.state = BUSY
            self.release(conn)

    def _connect_failed(self, conn: Connection, w: Waiter, kind: str) -> None:
        conn.state = CLOSED
        self._total(-1)
        if w.state == OPENING:
            w.state = GONE
            self._handout(w, None, kind)
        self._pulse()

    def open_warm(self, n: int) -> int:
        """Open `n` connections at once, already established and idle (pods running before t=0)."""
        opened = 0
        for _ in range(n):
            conn = self.open_established()
            if conn is None:
                break
            self.release(conn, count_use=False)
            opened += 1
        return opened

    def open_established(self) -> Connection | None:
        """One connection open since before t=0, checked out; None when the pool or the server is full."""
        if self.total >= self.max:
            return None
        refusal = self.connector.try_take_slot(self.series)
        if refusal is not None:
            self.connector.note_refusal(self.service, refusal)
            return None
        conn = Connection(self.series, self.server_terminated)
        self._total(1)
        self.connector.opened(conn)
        self.conns[conn.id] = conn
        conn.state = BUSY
        if self.max_lifetime > 0:
            Timer(self.env, self.max_lifetime, self._on_lifetime, conn)
        return conn

    # --- release and close -------------------------------------------------
    def release(self, conn: Connection, error: bool = False, count_use: bool = True) -> None:
        """client.release(err): closed on an error, past max_uses or max_lifetime; else reused."""
        if conn.state == CLOSED:
            return
        if count_use:
            conn.uses += 1
        if (error or conn.dead or conn.expired or self.destroyed
                or (self.max_uses and conn.uses >= self.max_uses)):
            self._close(conn)
            self._pulse()
            return
        if self.waiting:
            w = self._next_waiter()
            w.state = GONE
            self._handout(w, conn, None)
            return
        now = self.env._now
        conn.state = IDLE
        conn.idle_since = now
        self.idle.append(conn)
        add_opposite(now, self.series.pool_idle, self.in_use_level, 1.0)  # `_idle(now, 1)`, once a request
        if self.idle_timeout > 0.0 and not conn.idle_timer:
            conn.idle_timer = True
            Timer(self.env, self.idle_timeout, self._on_idle_timeout, conn)

    def _on_idle_timeout(self, timer: Timer) -> None:
        if self.loop is not None and self.loop.defer(self._on_idle_timeout, timer):
            return
        conn: Connection = timer.arg
        conn.idle_timer = False
        if conn.state != IDLE or self.frozen:  # frozen: `thaw` sets it again
            return
        due = conn.idle_since + self.idle_timeout
        if due - self.env._now > 1e-9:  # reused since this timer was set: wait for the rest
            conn.idle_timer = True
            Timer(self.env, due - self.env._now, self._on_idle_timeout, conn)
        elif self.total > self.min:
            self._close(conn)

    def freeze(self) -> None:
        """The instance is frozen between requests: idle connections stay open, whatever idle_timeout says."""
        self.frozen = True

    def thaw(self) -> None:
        """A request thaws the instance: idle timers run again, those overdue at once."""
        self.frozen = False
        if self.idle_timeout > 0:
            now = self.env._now
            for conn in self.idle:
                if not conn.idle_timer:
                    conn.idle_timer = True
                    Timer(self.env, max(0.0, conn.idle_since + self.idle_timeout - now), self._on_idle_timeout, conn)

    def _on_lifetime(self, timer: Timer) -> None:
        if self.loop is not None and self.loop.defer(self._on_lifetime, timer):
            return
        conn: Connection = timer.arg
        if conn.state == IDLE:
            self._close(conn)
            self._pulse()
        elif conn.state == BUSY:
            conn.expired = True

    def destroy(self, lost: bool = False) -> None:
        """The process ended: its sockets close. Idle, leaked and between-statements
        connections now; one in a statement when the statement ends (the backend
        notices then); connecting ones when they connect. Queued callers are forgotten.
        `lost`: no socket closes (`vanish`): every session is left to the server."""
        self.destroyed = True
        for conn in list(self.conns.values()):
            server = conn.server  # (behind PgBouncer the statement runs on the linked server)
            if lost or server is None or server.stmt is None:
                self._close(conn, lost)
        for w in self.queue:
            w.state = GONE
        self.queue.clear()
        self.gone_in_queue = 0
        if self.waiting:
            self._waiting(-self.waiting)

    def vanish(self) -> None:
        """The node under the process is gone: no socket closes, so the server keeps each session until it
        notices (`Connector.lost_by_client`); a connect under way is given up. Queued callers are forgotten."""
        self.destroy(lost=True)

    def server_terminated(self, conn: Connection, text: str) -> None:
        """The server ended this connection's session. Idle: pg-pool removes it and emits
        'error' on the pool. Checked out between statements: 'error' on the client itself;
        a leaked client then stays in the total, dead, for good. In a statement: that
        statement fails and release removes it."""
        if self.destroyed or conn.state == CLOSED:
            return
        if conn.state == IDLE:
            self._close(conn)
            if self.on_error is not None:
                self.on_error(text)
            self._pulse()
        elif conn.state == BUSY and conn.stmt is None:
            if conn.leaked and not conn.dead_counted:
                conn.dead_counted = True
                self.series.pool_dead.add(self.env._now, 1.0)
            if self.on_client_error is not None:
                self.on_client_error(conn, text)

    def _close(self, conn: Connection, lost: bool = False) -> None:
        now = self.env._now
        if conn.state == CLOSED:
            return
        if conn.state == IDLE:
            self.idle.remove(conn)
            self._idle(now, -1)
        conn.state = CLOSED
        self._total(-1)
        self.conns.pop(conn.id, None)
        if conn.dead_counted:
            self.series.pool_dead.add(now, -1.0)
        if conn.leaked:
            self.series.pool_leaked.add(now, -1.0)
        if not conn.id:
            self.connector.free_slot(self.series)
        elif lost:
            self.connector.lost_by_client(conn)
            return
        else:
            self.connector.closed_by_client(conn)
        self.series.closes[int(now * self.inv_bucket)] += 1
