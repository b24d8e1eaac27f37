"""The request handler inside a pod: the endpoint's statements through the pool.

`query`: each statement is one `pool.query()` — acquire, run, release, and a
failed statement closes its connection (pg-pool releases *with* the error).
`transaction`: `pool.connect()`, BEGIN, the statements in turn with `think`
between them (the session is idle in transaction meanwhile), COMMIT, release.
With try/finally an error is rolled back and the client released (kept);
with `leak_on_error` the handler has no try/finally: a failed statement
throws past `release()` and the client is checked out forever, its session
idle in transaction. With `orphan_rate`, a transaction is released without
COMMIT: back in the pool, its session still in the transaction. BEGIN,
COMMIT and ROLLBACK take no time here.

Behind PgBouncer the session is on the server connection the client is linked to
(`conn.server`; the connection itself when direct): a client without one asks
PgBouncer (`assign`) before its statement or transaction, and says when its
statement or transaction is over (`ready`), before the pool's release.

A `reads` endpoint's attempt asks the pod's pool of a read replica instead (round
robin, `Pod.read_pool`): its statements run on that replica, never behind PgBouncer.

A statement's result is handled on the pod's event loop (`query_result_cpu` of its CPU,
after the loop's backlog), and only then is the connection released or the next
statement sent: a busy loop holds its connections longer. Inside a transaction the
session is idle in transaction meanwhile (the server has answered and waits for the
app's next statement or COMMIT): a saturated loop shows on the database as a wall of
idle-in-transaction sessions. The `think` timer, too, fires when the loop gets to it.
"""
from __future__ import annotations

from simpy import Environment

from ..metrics import Recorder, ServiceSeries
from .connection import Connection
from .database import Database
from .pgbouncer import PgBouncer
from .pool import Pool
from .request import Attempt
from .timer import Timer


class Handler:
    """Runs attempts of one service; `finish(attempt, error)` is the pod's answer."""

    def __init__(self, env: Environment, database: Database, series: ServiceSeries, recorder: Recorder,
                 service: str, bouncer: PgBouncer | None = None, reads: frozenset[str] = frozenset(),
                 result_cpu: float = 0.0, query_timeout: float = 0.0):
        """`reads`: the names of the endpoints whose attempts go to a read replica's pool;
        `result_cpu`: the event-loop CPU of handling one statement's result; `query_timeout`:
        node-postgres's client-side timer on each statement (0: none)."""
        self.env = env
        self.query_timeout = query_timeout
        self.result_cpu = result_cpu
        self.reads = reads
        self.bouncer = bouncer  # the service's PgBouncer, if it has one
        self.db = database
        self.sessions = database.sessions
        self.series = series
        self.recorder = recorder
        self.service = service
        self.inv_bucket = recorder.inv_bucket
        # The pool's and the database's callbacks, bound once (`self._acquired` makes a bound method at each use).
        self.on_acquired = self._acquired
        self.on_result = self._result

    def start(self, att: Attempt) -> None:
        """The attempt has had its event-loop CPU: ask the pool for a connection."""
        att.stmt = 0
        att.role = 0
        ep = att.req.endpoint
        att.transient = ep.transient_rate > 0.0 and ep.draw_transient()
        if self.query_timeout:
            att.timed_out = 0
        att.pool = att.pod.read_pool() if self.reads and ep.name in self.reads else att.pod.pool
        att.pool.acquire(self.on_acquired, att)

    def _acquired(self, att: Attempt, conn, error: str | None) -> None:
        if att.gen != att.pod.gen:  # the pod crashed while this waited
            if conn is not None:
                att.pool.release(conn)
            return
        if error is not None:
            att.pod.finish(att, error)
            return
        att.conn = conn
        if conn.server is None:  # a PgBouncer client between transactions: it needs a server connection
            self.bouncer.assign(conn, self._linked, att)
            return
        if not att.req.endpoint.is_query and att.stmt == 0:
            att.foreign = self.sessions.begin(conn.server, self.series)  # BEGIN (only warns inside another)
        self._statement(att)

    def _linked(self, att: Attempt, error: str | None) -> None:
        """PgBouncer linked the client to a server connection, or closed it (`query_wait_timeout`,
        or `pgbouncer_refused` while its server logins fail): the statement fails on it."""
        conn = att.conn
        if att.gen != att.pod.gen:
            att.conn = None
            att.pool.release(conn, True)
            return
        ep = att.req.endpoint
        if error is None:
            if not ep.is_query and att.stmt == 0:
                att.foreign = self.sessions.begin(conn.server, self.series)
            self._statement(att)
            return
        att.conn = None
        if not ep.is_query and ep.leak_on_error:  # thrown past release(): leaked, and dead
            self._leak(att.pool, conn, error, int(self.env._now * self.inv_bucket))
        else:
            att.pool.release(conn, True)
        self._finish(att, error)

    def _statement(self, att: Attempt) -> None:
        req = att.req
        conn = att.conn.server  # the session the statement runs on
        i = att.stmt
        blocker = None
        if req.endpoint.set_role:
            if att.role == 0:  # SET ROLE tenant, before its first statement
                att.role = 2 if req.endpoint.draw_role_leak() else 1
                conn.role = True
        elif conn.role and att.role == 0:  # a role another request left: another tenant's rows
            att.role = -1
            self.series.foreign_role[int(self.env._now * self.inv_bucket)] += 1
        if conn.tx is not None and (att.foreign or req.endpoint.is_query):
            self.series.foreign_statements[int(self.env._now * self.inv_bucket)] += 1
            att.risk_tx = conn.tx
        db = att.pool.replica or self.db
        if req.locks and (req.locks >> i) & 1 and (conn.tx is None or not conn.tx.orphan):
            blocker = db.sessions.blocker(conn)  # (inside an orphan it holds the locks itself)
        work = req.work
        if self.query_timeout:  # client.query() arms its read timer (on the event loop, like every timer)
            att.qdue = self.env._now + self.query_timeout
            Timer(self.env, self.query_timeout, self._query_due, (att, i))
        if req.endpoint.windows:  # a slow_queries incident: scale the statement (else the factor is 1)
            factor = req.endpoint.slowdown(self.env._now)
            db.execute(conn, work[2 * i] * factor, work[2 * i + 1] * factor, self.on_result, att, blocker)
        else:
            db.execute(conn, work[2 * i], work[2 * i + 1], self.on_result, att, blocker)

    def _result(self, att: Attempt, error: str | None, handled: bool = False) -> None:
        """The server answered (`error`: the statement's failure, or None): the pod's event loop handles
        the result when it gets to it (`handled`: it has), then the connection is released or the
        next statement sent."""
        pod = att.pod
        if not handled and att.gen == pod.gen:
            loop, cost = pod.loop, self.result_cpu
            delay = loop.later(cost) if cost > 0.0 or loop.free_at > self.env._now else 0.0  # (later(0) idle: 0)
            if self.query_timeout and att.timed_out == 0:
                if self.env._now + delay > att.qdue:
                    att.timed_out = 1  # Node runs an expired timer before it reads the socket
                else:
                    att.qdue = -1.0    # in time: the timer finds nothing to do
            if delay > 0.0:
                att.error = error
                if not att.req.endpoint.is_query:  # the server has answered: the session waits on the app
                    self.sessions.enter_iit(att.conn.server)
                Timer(self.env, delay, self._result_handled, att)
                return
        req = att.req
        ep = req.endpoint
        if error is None and req.errors and (req.errors >> att.stmt) & 1:
            error = "statement_error"
        if error is None and att.transient and att.stmt == ep.statements - 1:
            error = "transient_error"  # found at the end: a serialization failure, a deadlock victim
        if self.query_timeout and att.timed_out:
            error = "query_timeout"  # the app threw at the timer; the statement's end reaches a catch, or none
        pool = att.pool
        conn = att.conn
        if att.gen != pod.gen:  # the pod crashed during the statement: the socket is gone
            att.conn = None
            pool.release(conn, True)
            return
        att.stmt += 1
        more = att.stmt < ep.statements
        srv = conn.server
        if ep.is_query:
            att.conn = None
            if error is None and srv.tx is not None:
                self.sessions.enter_iit(srv)  # still inside the orphan it ran in
            if srv is not conn:
                self.bouncer.ready(conn)  # the statement is over: transaction mode gives its server back
            pool.release(conn, error is not None)
            if error is None and more:
                pool.acquire(self.on_acquired, att)
            else:
                self._finish(att, error)
            return
        if error is None and more:
            if ep.think > 0:
                self.sessions.enter_iit(srv)
                Timer(self.env, ep.think, self._after_think, att)
            else:
                self._statement(att)
            return
        self._end_transaction(att, error)

    def _result_handled(self, timer: Timer) -> None:
        att = timer.arg
        self._result(att, att.error, True)

    def _end_transaction(self, att: Attempt, error: str | None) -> None:
        """A transaction's last statement is done, or one failed: COMMIT, ROLLBACK (or a leak, or
        an orphan), release, and the attempt's answer."""
        req = att.req
        pool = att.pool
        conn = att.conn
        srv = conn.server
        att.conn = None
        now = self.env._now
        b = int(now * self.inv_bucket)
        if error is not None and req.endpoint.leak_on_error:
            self._leak(pool, conn, error, b)
        else:
            if error is not None:
                self.sessions.rollback(srv)  # catch: ROLLBACK; finally: release()
            elif req.orphan:
                self.sessions.orphan(srv)    # released without COMMIT
                att.risk_tx = srv.tx
                self.series.orphaned[b] += 1
                self._first("orphan", "first_orphan", "a transaction was released without COMMIT or ROLLBACK:"
                            " its session stays idle in transaction, holding its locks")
            else:
                self.sessions.commit(srv)
            if att.role == 1:
                srv.role = False  # RESET ROLE before release
            if srv is not conn:
                self.bouncer.ready(conn)  # the transaction is over (an orphan's is not: it keeps its server)
            pool.release(conn)
        self._finish(att, error)

    def _leak(self, pool: Pool, conn: Connection, error: str, b: int) -> None:
        """No try/finally: the error flies past release(); the client is out for good (behind
        PgBouncer its transaction keeps the server connection, unless that one is dead)."""
        conn.leaked = True
        self.series.leaked[b] += 1
        self.series.pool_leaked.add(self.env._now, 1.0)
        srv = conn.server
        if srv is not conn:
            self.bouncer.ready(conn)
        if conn.dead and not conn.dead_counted:
            conn.dead_counted = True
            self.series.pool_dead.add(self.env._now, 1.0)
        self.sessions.orphan(srv)  # idle in transaction (aborted), locks held
        self._first("leak", "first_leak", f"a failed statement ({error}) skipped client.release():"
                    f" {pool.total} of {pool.max} connections open in that pod's pool")

    def leaked_before(self, conn: Connection) -> None:
        """A client a pod running at time 0 leaked before the run: checked out for good, its session
        idle in transaction (aborted). In `pool_leaked` and the database's gauges, not in `leaked`.
        Behind PgBouncer its open transaction holds a server connection (from PgBouncer's first login)."""
        conn.leaked = True
        self.series.pool_leaked.add(self.env._now, 1.0)
        if conn.server is None:
            self.bouncer.assign(conn, self._leaked_linked, conn)
        else:
            self._leaked_linked(conn, None)

    def _leaked_linked(self, conn: Connection, error: str | None) -> None:
        if error is None:  # (refused: PgBouncer closed the client, and no transaction holds a server)
            self.sessions.begin(conn.server, self.series)
            self.sessions.orphan(conn.server)

    def _finish(self, att: Attempt, error: str | None) -> None:
        if self.query_timeout and att.timed_out:
            if att.timed_out == 1:
                self._time_out(att)
            return
        if error is None and att.risk_tx is not None:
            tx = att.risk_tx
            if tx.open:
                tx.at_risk += 1
            elif not tx.committed:  # already rolled back under it
                self.series.lost_writes[int(self.env._now * self.inv_bucket)] += 1
        att.risk_tx = None
        att.pod.finish(att, error)

    def _query_due(self, timer: Timer) -> None:
        """The statement's query_timeout is due: when the loop gets to it, the app's await throws
        `Query read timeout` unless the result came first. The server's statement goes on
        (node-postgres cancels nothing); what the code does with the connection waits for its end."""
        att, i = timer.arg
        if att.gen != att.pod.gen or att.timed_out == 2 or (att.timed_out == 0 and (att.stmt != i or att.qdue < 0)):
            return
        if att.pod.loop.defer(self._query_due, timer):
            return
        self._time_out(att)

    def _time_out(self, att: Attempt) -> None:
        att.timed_out = 2
        att.pod.finish(att, "query_timeout")

    def _first(self, key: str, kind: str, detail: str) -> None:
        if key not in self.series.first_failure:
            self.series.first_failure.add(key)
            self.recorder.event(self.env._now, self.service, kind, detail)

    def _after_think(self, timer: Timer) -> None:
        att = timer.arg
        if att.gen == att.pod.gen and att.pod.loop.defer(self._after_think, timer):
            return
        if att.gen != att.pod.gen:
            if att.conn is not None:
                att.pool.release(att.conn, True)
            att.conn = None
            return
        self._statement(att)
