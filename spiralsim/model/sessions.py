"""What PostgreSQL knows of each connection: its session, its open transaction,
and what happens when nobody closes that transaction.

A transaction released without COMMIT or ROLLBACK (an orphan), or left open by a
handler that leaked its client, stays *idle in transaction* holding its locks.
The next user of that connection runs inside it (BEGIN only warns); a COMMIT on
it commits the orphan's work too; a ROLLBACK, a closed connection or
`idle_in_transaction_session_timeout` rolls it back, and every request that
succeeded with writes inside it has silently lost them. The server can also end
sessions itself (the timeout, a restart); after a silent network drop it keeps
them, lost, until TCP tells it (`keepalive.py`).
"""
from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Callable

from simpy import Environment

from ..metrics import Recorder, ServiceSeries
from .connection import Connection
from .keepalive import RETRANSMISSION_TIMEOUT, Keepalive, LostSession, nobody_listens
from .timer import Deadline, Timer

IIT_TIMEOUT_TEXT = "FATAL 25P03 terminating connection due to idle-in-transaction timeout"
ADMIN_TEXT = "FATAL 57P01 terminating connection due to administrator command"


class Transaction:
    """An open transaction on one session; an orphan holds its locks for all to see."""

    __slots__ = ("series", "orphan", "open", "committed", "at_risk", "waiters")

    def __init__(self, series: ServiceSeries):
        self.series = series
        self.orphan = False
        self.open = True
        self.committed = False
        self.at_risk = 0  # requests that succeeded with writes inside it, not yet committed
        self.waiters: list = []  # statements waiting for its locks


class Sessions:
    """The server's session table: transactions, idle-in-transaction, terminations."""

    def __init__(self, env: Environment, recorder: Recorder, iit_timeout: float,
                 free_slot: Callable[[ServiceSeries], None],
                 kill_statement: Callable[[Any, str], None], lock_released: Callable[[Any], None],
                 keepalive: Keepalive = Keepalive(), role_iit_timeout: dict[str, float] | None = None):
        """`free_slot(series)`, `kill_statement(stmt, kind)` and `lock_released(stmt)` are the
        database's: a session's end frees its slot and ends its statement, a
        transaction's end wakes the statements waiting for its locks. `keepalive`: when a
        silently dropped session ends. `role_iit_timeout`: by service, a role's own
        idle_in_transaction_session_timeout, which beats `iit_timeout` for its sessions."""
        self.env = env
        self.keepalive = keepalive
        self.free_slot = free_slot
        self.kill_statement = kill_statement
        self.lock_released = lock_released
        self.recorder = recorder
        self.inv_bucket = recorder.inv_bucket
        self.iit_timeout = iit_timeout
        self.role_iit_timeout = role_iit_timeout or {}
        self.iit_level = recorder.db.idle_in_transaction
        self.iit_since: OrderedDict[int, float] = OrderedDict()  # sessions idle in transaction, oldest first
        self.oldest_level = recorder.db.iit_oldest_since
        self.oldest_level.set(0.0, -1.0)
        self.orphans_level = recorder.db.orphans_open
        self.live: dict[int, Connection] = {}  # by connection id, in connect order
        self.orphans: list[Transaction] = []     # open orphaned transactions, oldest first
        self.next_id = 0
        self.on_end: Callable[[Connection], None] | None = None  # told when a session ends (its backend exits)

    # --- sessions ----------------------------------------------------------
    def opened(self, conn: Connection) -> None:
        """A connect succeeded: the backend is there."""
        self.next_id += 1
        conn.id = self.next_id
        conn.last_io = self.env.now
        self.live[conn.id] = conn

    def closed_by_client(self, conn: Connection) -> None:
        """The app closed the socket: the backend rolls back and frees its slot."""
        if conn.dead or conn.id not in self.live:
            return
        self._end_session(conn)
        self.free_slot(conn.series)

    def _end_session(self, conn: Connection) -> None:
        self.leave_iit(conn)
        if conn.tx is not None:
            self._end(conn.tx, committed=False)
            conn.tx = None
        del self.live[conn.id]
        if self.on_end is not None:
            self.on_end(conn)

    # --- transactions ------------------------------------------------------
    def begin(self, conn: Connection, series: ServiceSeries) -> bool:
        """BEGIN; True when the session already had a transaction (someone else's)."""
        if conn.tx is not None:
            return True
        conn.tx = Transaction(series)
        return False

    def commit(self, conn: Connection) -> None:
        """COMMIT: ends the session's transaction, the orphan's writes included."""
        tx = conn.tx
        if tx is not None:
            conn.tx = None
            self.leave_iit(conn)
            self._end(tx, committed=True)

    def rollback(self, conn: Connection) -> None:
        """ROLLBACK: ends it, and loses whatever orphaned work was inside."""
        tx = conn.tx
        if tx is not None:
            conn.tx = None
            self.leave_iit(conn)
            self._end(tx, committed=False)

    def orphan(self, conn: Connection) -> None:
        """The transaction is left open with nobody to close it: idle in transaction."""
        tx = conn.tx
        if tx is None:
            return
        if conn.dead:  # nothing left on the server to hold open
            conn.tx = None
            self._end(tx, committed=False)
            return
        if not tx.orphan:
            tx.orphan = True
            self.orphans.append(tx)
            self.orphans_level.add(self.env.now, 1.0)
        self.enter_iit(conn)

    def _end(self, tx: Transaction, committed: bool) -> None:
        tx.open = False
        tx.committed = committed
        if tx.orphan:
            self.orphans.remove(tx)
            self.orphans_level.add(self.env.now, -1.0)
        if not committed and tx.at_risk:
            tx.series.lost_writes[int(self.env.now * self.inv_bucket)] += tx.at_risk
        tx.at_risk = 0
        waiters, tx.waiters = tx.waiters, []
        for stmt in waiters:
            self.lock_released(stmt)

    def blocker(self, conn: Connection) -> Transaction | None:
        """The open orphan whose locks a conflicting statement on `conn` waits for."""
        for tx in self.orphans:
            if tx is not conn.tx:
                return tx
        return None

    # --- idle in transaction -----------------------------------------------
    def enter_iit(self, conn: Connection) -> None:
        """The session has an open transaction and runs nothing: idle in transaction."""
        if conn.tx is None or conn.iit or conn.dead:
            return
        now = self.env.now
        conn.iit = True
        conn.iit_since = now
        self.iit_level.add(now, 1.0)
        if not self.iit_since:
            self.oldest_level.set(now, now)
        self.iit_since[conn.id] = now
        timeout = self.iit_timeout_of(conn)
        if timeout > 0:
            Deadline(self.env, timeout, self._on_iit_timeout, (conn, now))

    def iit_timeout_of(self, conn: Connection) -> float:
        """The idle_in_transaction_session_timeout of `conn`'s session: its role's, else the server's."""
        return self.role_iit_timeout.get(conn.series.name, self.iit_timeout) if self.role_iit_timeout \
            else self.iit_timeout

    def leave_iit(self, conn: Connection) -> None:
        """The session runs a statement again, or its transaction or session ends."""
        if conn.iit:
            conn.iit = False
            now = self.env.now
            self.iit_level.add(now, -1.0)
            oldest = next(iter(self.iit_since)) == conn.id
            del self.iit_since[conn.id]
            if oldest:  # pg_stat_activity's oldest state_change among them moves on
                self.oldest_level.set(now, next(iter(self.iit_since.values()), -1.0))

    def _on_iit_timeout(self, timer: Timer) -> None:
        conn, since = timer.arg
        if conn.iit and conn.iit_since == since and not conn.dead:
            series = conn.tx.series if conn.tx is not None else conn.series
            series.sessions_killed[int(self.env.now * self.inv_bucket)] += 1
            self.terminate(conn, IIT_TIMEOUT_TEXT)

    # --- the server ends sessions -------------------------------------------
    def terminate(self, conn: Connection, text: str) -> None:
        """The server ends the session (FATAL to the client): slot and locks freed at once."""
        if conn.dead or conn.id not in self.live:
            return
        self._end_session(conn)
        self.free_slot(conn.series)
        conn.dead = True
        if type(conn) is not LostSession:  # (a lost session's app connection is long dead)
            conn.series.terminated[int(self.env.now * self.inv_bucket)] += 1
        if conn.stmt is not None:
            self.kill_statement(conn.stmt, "connection_terminated")
        conn.on_server_end(conn, text)

    def terminate_all(self, text: str) -> None:
        """A restart: every session ends with 57P01."""
        for conn in list(self.live.values()):
            self.terminate(conn, text)

    def drop_silently(self) -> None:
        """A network drop: the app finds each connection dead on use (a statement running fails for
        it at once), while the server keeps each session, lost, until it notices (`keepalive.py`)."""
        now = self.env.now
        told = []
        for conn in list(self.live.values()):
            if type(conn) is LostSession:  # lost already, by an earlier drop
                continue
            stmt = conn.stmt
            if stmt is not None:  # it runs on at the server; its caller hears of it no more
                told.append((stmt.done, stmt.arg))
            self._lose(conn, now)
        for done, arg in told:
            done(arg, "connection_terminated")

    def lost_by_client(self, conn: Connection) -> None:
        """The client's node vanished: nobody listens for this session any more, and the server keeps it,
        and a statement it runs, until it notices (`keepalive.py`)."""
        if conn.dead or conn.id not in self.live:
            return
        self._lose(conn, self.env.now)

    def _lose(self, conn: Connection, now: float) -> LostSession:
        """Move the session of `conn` (now dead for the app) to a LostSession the server keeps."""
        lost = LostSession(conn.series, nobody_listens)
        lost.id, lost.tx, lost.stmt, lost.role = conn.id, conn.tx, conn.stmt, conn.role
        lost.iit, lost.iit_since, lost.last_io = conn.iit, conn.iit_since, conn.last_io
        self.live[conn.id] = lost
        conn.tx, conn.stmt, conn.iit, conn.dead = None, None, False, True
        tx = lost.tx
        if tx is not None and not tx.orphan:  # abandoned: its locks hold until the session ends
            tx.orphan = True
            self.orphans.append(tx)
            self.orphans_level.add(now, 1.0)
        keepalive = self.keepalive
        stmt = lost.stmt
        if stmt is None:
            lost.dead_at = keepalive.dead_at(lost.last_io, now)
            Timer(self.env, lost.dead_at - now, self._on_noticed, lost)
            timeout = self.iit_timeout_of(lost)
            if lost.iit and timeout > 0:  # its idle-in-transaction timeout runs on
                Timer(self.env, max(0.0, lost.iit_since + timeout - now), self._on_iit_timeout,
                      (lost, lost.iit_since))
        else:  # it runs on; its end goes to the lost session, not to the caller
            stmt.conn = lost
            stmt.done = self._lost_statement_done
            stmt.arg = lost
            lost.dead_at = keepalive.dead_at(stmt.t0, now)
            check = keepalive.check_finds(stmt.t0, lost.dead_at)
            if check < math.inf:
                Timer(self.env, check - now, self._on_check, lost)
        return lost

    def _lost_statement_done(self, lost: LostSession, _error: str | None) -> None:
        """A lost session's statement ended: its reply goes into the dead socket (keepalive.py, rule 3)."""
        if lost.dead:
            return
        if self.env.now >= lost.dead_at:  # the kernel knows: the send fails, the backend exits
            self._free_lost(lost)
            return
        lost.dead_at = self.env.now + RETRANSMISSION_TIMEOUT  # retransmitted until the kernel gives up
        Timer(self.env, RETRANSMISSION_TIMEOUT, self._on_noticed, lost)
        self.enter_iit(lost)

    def _on_noticed(self, timer: Timer) -> None:
        if not timer.arg.dead:
            self._free_lost(timer.arg)

    def _on_check(self, timer: Timer) -> None:
        lost: LostSession = timer.arg
        if not lost.dead and lost.stmt is not None:  # client_connection_check_interval finds it closed
            self._free_lost(lost)

    def _free_lost(self, lost: LostSession) -> None:
        """The server notices: the backend exits, rolling back, freeing its slot and locks."""
        lost.dead = True
        self._end_session(lost)
        self.free_slot(lost.series)
        if lost.stmt is not None:
            self.kill_statement(lost.stmt, "connection_terminated")
