"""The shared PostgreSQL: connection slots, connects and refusals, statement execution.
A read replica is another `Database` with the same settings and a recording of its own.

A statement's CPU part is served by `cores` shared among the active statements
(processor sharing: more concurrent statements than cores slows every one of
them; with `contention`, past the cores they get less done in all: `contention.py`),
its wait part (I/O, locks) is a plain delay. Slots: apps may hold at most
max_connections - superuser_reserved_connections - other_connections; one more
connect is refused with SQLSTATE 53300 after costing the connect time. Every
connect, refused or not, queues for the postmaster and costs the cores the
backend's start (`postmaster.py`).
"""
from __future__ import annotations

from typing import Callable, NamedTuple

from simpy import Environment

from ..metrics import DatabaseSeries, Recorder, ServiceSeries
from ..scenario import DatabaseConfig
from .connection import Connection
from .cpu_share import CpuShare
from .keepalive import Keepalive
from .memory import ServerMemory, mean_backend_mb
from .postmaster import BackendStart, Postmaster
from .sessions import ADMIN_TEXT, Sessions, Transaction
from .timer import Deadline, Timer, schedule

RESERVED_TEXT = "remaining connection slots are reserved for non-replication superuser connections"
FULL_TEXT = "sorry, too many clients already"
RESTART_TEXT = "57P03 the database system is starting up"


class Statement:
    """One running statement; `phase` 0 = CPU, 1 = wait, 2 = ended, 3 = waiting for a lock.
    Its wait is an event of its own: the statement goes on SimPy's heap itself (`schedule`)."""

    __slots__ = ("wait", "done", "arg", "phase", "dead", "conn", "cpu", "t0", "callbacks")
    _ok = True  # as a heap item: what SimPy's loop checks

    def __init__(self, conn: Connection, cpu: float, wait: float, done: Callable[[object, str | None], None],
                 arg: object):
        self.conn = conn
        self.cpu = cpu
        self.wait = wait
        self.done = done
        self.arg = arg
        self.phase = 0
        self.dead = False
        self.t0 = 0.0


class _ServerRecorder(NamedTuple):
    """What `Sessions` read of a recorder, for a read replica: its own series as `db`."""

    db: DatabaseSeries
    inv_bucket: float


class Database:
    """PostgreSQL as the pods see it: slots, connects and refusals, statements with
    their locks and statement_timeout, sessions (see `Sessions`), restarts and drops.
    A `Connector` for the pools that connect to it directly (and for PgBouncer's servers).

    `replica` > 0: read replica number `replica`, recorded in `recorder.replicas[replica - 1]`
    (the primary, 0, in `recorder.db`)."""

    def __init__(self, env: Environment, config: DatabaseConfig, recorder: Recorder, replica: int = 0,
                 roles: dict | None = None):
        """`roles`: each service's RoleConfig, whose timeouts beat the server's for its sessions."""
        self.env = env
        self.config = config
        self.recorder = recorder
        self.replica = replica
        self.series = recorder.replicas[replica - 1] if replica else recorder.db
        self.inv_bucket = recorder.inv_bucket
        self.connect_time = config.connect_time
        self.max_connections = config.max_connections
        self.reserved_from = config.max_connections - config.superuser_reserved_connections
        self.other = config.other_connections
        self.statement_timeout = config.statement_timeout
        self.memory = ServerMemory(config) if config.memory_mb > 0 else None
        self.swapped = False  # the db_swap event, once
        # a service whose role sets its own statement_timeout: that, for its sessions
        self.role_statement_timeout = {name: r.statement_timeout for name, r in (roles or {}).items()
                                       if r.statement_timeout is not None}
        self.held = 0  # app connections (established or being set up)
        usl = (config.contention_sigma, config.contention_kappa) if config.contention else (0.0, 0.0)
        self.cpu = CpuShare(env, config.cores, self._on_busy, self._after_cpu, *usl)
        self.postmaster = Postmaster(config.accept_rate)
        self.connect_cpu = config.connect_cpu
        self.refused_connect_cpu = config.refused_connect_cpu
        self.inv_cores = 1.0 / config.cores
        self.next_cost = (self.connect_cpu, False)  # (CPU, refused) of the connect try_take_slot just decided
        role_iit = {name: r.idle_in_transaction_session_timeout for name, r in (roles or {}).items()
                    if r.idle_in_transaction_session_timeout is not None}
        self.sessions = Sessions(env, _ServerRecorder(self.series, recorder.inv_bucket) if replica else recorder,
                                 config.idle_in_transaction_session_timeout, self.free_slot, self.kill,
                                 self.lock_released, Keepalive.of(config), role_iit)
        self.first_refusal = True
        self.restarting = False      # a db_restart window: connects refused
        self.unreachable_until = 0.0  # a network_blip window: connects wait for the network
        if self.memory is not None and self.memory.growth:  # a backend's end frees what it grew
            self.sessions.on_end = self.memory.ended
        self.series.connections.set(0.0, float(self.other))
        self.wait_callbacks = (self._finish,)  # a statement's wait ends (`schedule`), made once

    def _on_busy(self, utilization: float) -> None:
        self.series.busy_cores.set(self.env._now, utilization)

    # --- connections -------------------------------------------------------
    def try_take_slot(self, series: ServiceSeries) -> tuple[str, str] | None:
        """Claim a slot for a new connection of `series`' service; (failure kind, server text) when refused."""
        if self.restarting:  # (the postmaster forks a child to say so: no authentication)
            self.next_cost = (self.refused_connect_cpu, True)
            return ("connection_terminated", RESTART_TEXT)
        used = self.held + self.other
        if used >= self.max_connections:  # no PGPROC left: refused before authentication
            self.next_cost = (self.refused_connect_cpu, True)
            return ("too_many_clients", FULL_TEXT)
        if used >= self.reserved_from:  # checked after authentication (postinit.c): the full cost
            self.next_cost = (self.connect_cpu, True)
            return ("too_many_clients", RESERVED_TEXT)
        self.next_cost = (self.connect_cpu, False)
        self.held += 1
        now = self.env._now
        self.series.connections.set(now, float(self.held + self.other))
        if not self.replica:  # (a service's db_connections are its slots on the primary)
            series.db_connections.add(now, 1.0)
        return None

    def connect_delay(self) -> float:
        """Seconds the connect `try_take_slot` just decided takes from now: the wait for the network
        (while it is down), the postmaster's queue, the backend's CPU and `connect_time` (network, TLS).

        The pool fixes a connect's length when it starts (its connect timeout races it), so the
        backend's wait for the cores is taken at their share now; its CPU itself is served in
        `CpuShare` from its acceptance on, so the statements feel it exactly."""
        now = self.env._now
        arrive = self.unreachable_until if self.unreachable_until > now else now
        accepted = self.postmaster.accept(arrive)
        work, refused = self.next_cost
        cpu = 0.0
        if work > 0:
            Timer(self.env, accepted - now, self._backend_start, (work, refused))
            cpu = work / self.cpu.rate(self.cpu.n + 1)
        return (accepted - now) + cpu + self.connect_time

    def _backend_start(self, timer: Timer) -> None:
        """The postmaster has forked the backend: its start and authentication take the cores."""
        work, refused = timer.arg
        self.cpu.add(work, BackendStart())
        counter = self.series.refused_connect_cpu if refused else self.series.connect_cpu
        counter[int(self.env._now * self.inv_bucket)] += work * self.inv_cores

    def free_slot(self, series: ServiceSeries) -> None:
        """A connection of `series`' service closed (by the pool, a crash, the server, or a failed connect)."""
        self.held -= 1
        now = self.env._now
        self.series.connections.set(now, float(self.held + self.other))
        if not self.replica:
            series.db_connections.add(now, -1.0)

    def opened(self, conn: Connection) -> None:
        """A connect succeeded: the backend is there (its session begins)."""
        self.sessions.opened(conn)

    def closed_by_client(self, conn: Connection) -> None:
        """The client closed the socket: the backend rolls back and frees its slot."""
        self.sessions.closed_by_client(conn)

    def lost_by_client(self, conn: Connection) -> None:
        """The client's node is gone, no FIN sent: the session stays until the server notices (`keepalive.py`)."""
        self.sessions.lost_by_client(conn)

    def note_refusal(self, service: str, refusal: tuple[str, str]) -> None:
        """Count a refused connect; the first one is an event."""
        now = self.env._now
        self.series.refused[int(now * self.inv_bucket)] += 1
        if self.first_refusal and refusal[0] == "too_many_clients":
            self.first_refusal = False
            server = f"read replica {self.replica}" if self.replica else "database"
            self.recorder.event(
                now, service, "first_refused_connect",
                f"{refusal[1]} ({server} holds {self.held + self.other} of {self.max_connections}, "
                f"{self.reserved_from - self.other} usable by apps)",
            )

    # --- incidents ---------------------------------------------------------
    def restart(self, end: float) -> None:
        """db_restart: every session ends with 57P01; connects are refused until `end`."""
        self.restarting = True
        Timer(self.env, end - self.env._now, self._restarted)
        self.sessions.terminate_all(ADMIN_TEXT)

    def _restarted(self, _timer: Timer) -> None:
        self.restarting = False

    def network_drop(self, end: float) -> None:
        """network_blip: every connection dies silently (the server frees each session when TCP
        keepalive tells it: `keepalive.py`); connects wait for the network."""
        self.unreachable_until = max(self.unreachable_until, end)
        self.sessions.drop_silently()

    # --- statements --------------------------------------------------------
    def execute(self, conn: Connection, cpu: float, wait: float, done: Callable[[object, str | None], None],
                arg: object, blocker: Transaction | None = None) -> None:
        """Run one statement on `conn` (seconds of CPU, seconds of wait), first waiting for
        `blocker`'s locks if given; then `done(arg, error_kind or None)`."""
        if conn.dead:  # a dropped connection is found on use
            done(arg, "connection_terminated")
            return
        if self.memory is not None:
            m = self.memory
            if m.growth:
                m.grow(conn.id)
            slower = m.factor(self.held + self.other, self.series.active.value + 1, self.env._now)
            if slower > 1.0:
                cpu, wait = cpu * slower, wait * slower
                self._swapping()
        stmt = Statement(conn, cpu, wait, done, arg)
        conn.stmt = stmt
        if conn.iit:
            self.sessions.leave_iit(conn)
        now = self.env._now
        stmt.t0 = now
        self.series.active.add(now, 1.0)
        timeout = self.role_statement_timeout.get(conn.series.name, self.statement_timeout) \
            if self.role_statement_timeout else self.statement_timeout
        if timeout > 0.0:
            Deadline(self.env, timeout, self._on_timeout, stmt)
        if blocker is not None:
            stmt.phase = 3
            blocker.waiters.append(stmt)
            conn.series.lock_waits[int(now * self.inv_bucket)] += 1
        else:
            self._run(stmt)

    def _swapping(self) -> None:
        if not self.swapped:
            self.swapped = True
            m = self.memory
            backends = self.held + self.other
            used = m.used(backends, self.series.active.value + 1)
            where = f"read replica {self.replica}" if self.replica else "the database"
            self.recorder.event(self.env._now, "", "db_swap",
                                f"{where} holds {used:,.0f} MB ({backends} backends{self._grown_words(backends)},"
                                f" {self.series.active.value + 1:.0f} statements running) in {m.ram:,.0f} MB of RAM:"
                                f" statements run {m.slowdown:g}x slower while it swaps")

    def _grown_words(self, backends: float, extra: float | None = None) -> str:
        """", N MB each on average" when backends grow (nothing otherwise)."""
        m = self.memory
        if not m.growth:
            return ""
        each = mean_backend_mb(self.config.backend_mb, backends, m.extra if extra is None else extra)
        return f" of {each:,.1f} MB each on average"

    def report_memory(self) -> None:
        """At the run's end, with memory modelled: the most the server held as a statement started, as a
        `db_memory_peak` event at that time."""
        m = self.memory
        if m is None or m.peak < 0:
            return
        where = f"read replica {self.replica}" if self.replica else "the database"
        fits = "above" if m.peak > m.ram else "within"
        end_mb = m.used(self.held + self.other, 0)  # at the end, without work_mem: what less load would not free
        self.recorder.event(m.peak_at, "", "db_memory_peak",
                            f"{where} held at most {m.peak:,.0f} MB ({m.peak_backends:.0f} backends"
                            f"{self._grown_words(m.peak_backends, m.peak_extra)}, {m.peak_running:.0f} statements"
                            f" running), {fits} its {m.ram:,.0f} MB of RAM",
                            {"server": where, "peak_mb": m.peak, "ram_mb": m.ram, "end_mb": end_mb})

    def _run(self, stmt: Statement) -> None:
        if stmt.cpu > 0.0:
            stmt.phase = 0
            self.cpu.add(stmt.cpu, stmt)
        elif stmt.wait > 0.0:
            stmt.phase = 1
            schedule(self.env, stmt.wait, self.wait_callbacks, stmt)
        else:
            self._finish(stmt, None)

    def lock_released(self, stmt: Statement) -> None:
        """The orphan that `stmt` waited for has ended: its rows are free."""
        if stmt.phase != 3:
            return
        self._count_lock_wait(stmt)
        self._run(stmt)

    def _count_lock_wait(self, stmt: Statement) -> None:
        """A lock wait is counted when it begins; its seconds when it ends."""
        series = stmt.conn.series
        b = int(self.env._now * self.inv_bucket)
        series.lock_waits_done[b] += 1
        series.lock_wait_sum[b] += self.env._now - stmt.t0

    def _after_cpu(self, stmt: Statement) -> None:
        if stmt.conn is None:  # a backend's start (BackendStart): nobody waits for it
            return
        if stmt.wait > 0.0:
            stmt.phase = 1
            schedule(self.env, stmt.wait, self.wait_callbacks, stmt)
        else:
            self._finish(stmt, None)

    def _on_timeout(self, timer: Timer) -> None:
        self.kill(timer.arg, "statement_timeout")

    def kill(self, stmt: Statement, error: str) -> None:
        """End a statement early: statement_timeout (57014) or its session's end."""
        if stmt.phase == 2:
            return
        if stmt.phase == 0:
            self.cpu.cancel(stmt)
        elif stmt.phase == 3:
            self._count_lock_wait(stmt)
        self._finish(stmt, error)

    def _finish(self, stmt: Statement, error: str | None = None) -> None:
        """The statement ends (`error`: why it failed, None when done). Also its wait's callback:
        a statement killed while it waited has ended already, and its wait's end does nothing."""
        if stmt.phase == 2:
            return
        stmt.phase = 2
        now = self.env._now
        conn = stmt.conn
        conn.stmt = None
        conn.last_io = now
        self.series.active.sub(now, 1.0)
        series = conn.series  # its time, as the app measures a query (lock wait, CPU queue and all)
        times = series.stmt_times  # (binned into series.stmt_hist when a later bucket begins)
        b = int(now * self.inv_bucket)
        if b != times.bucket:
            times.start(b)
        times.pending.append(now - stmt.t0)
        stmt.done(stmt.arg, error)
