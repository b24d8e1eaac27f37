"""The request handler inside a pod: the endpoint's statements through the pool.

`query`: each statement is one `pool.query()` — acquire, run, release, and a
failed statement closes its connection (pg-pool releases *with* the error).
`transaction`: `pool.connect()`, BEGIN, the statements in turn with `think`
between them (the session is idle in transaction meanwhile), COMMIT, release;
an error is caught, rolled back and the client released with try/finally, so
the connection is kept. BEGIN, COMMIT and ROLLBACK take no time here.
"""
from __future__ import annotations

from simpy import Environment

from .client import Attempt
from .database import Database
from .timer import Timer


class Handler:
    """Runs attempts of one service; `finish(attempt, error)` is the pod's answer."""

    def __init__(self, env: Environment, database: Database):
        self.env = env
        self.db = database
        self.iit = database.series.idle_in_transaction

    def start(self, att: Attempt) -> None:
        """The attempt has had its event-loop CPU: ask the pool for a connection."""
        att.stmt = 0
        att.pool = att.pod.pool
        att.pool.acquire(self._acquired, att)

    def _acquired(self, att: Attempt, conn, error: str | None) -> None:
        if att.gen != att.pod.gen:  # the pod crashed while this waited
            if conn is not None:
                att.pool.release(conn)
            return
        if error is not None:
            att.pod.finish(att, error)
            return
        att.conn = conn
        self._statement(att)

    def _statement(self, att: Attempt) -> None:
        req = att.req
        i = 2 * att.stmt
        factor = req.endpoint.slowdown(self.env.now)
        self.db.execute(req.work[i] * factor, req.work[i + 1] * factor, self._statement_done, att)

    def _statement_done(self, att: Attempt, error: str | None) -> None:
        req = att.req
        ep = req.endpoint
        if error is None and req.errors and (req.errors >> att.stmt) & 1:
            error = "statement_error"
        pool = att.pool
        conn = att.conn
        if att.gen != att.pod.gen:  # the pod crashed during the statement: the socket is gone
            att.conn = None
            pool.release(conn, True)
            return
        att.stmt += 1
        more = att.stmt < ep.statements
        if ep.is_query:
            att.conn = None
            pool.release(conn, error is not None)
            if error is None and more:
                pool.acquire(self._acquired, att)
            else:
                att.pod.finish(att, error)
            return
        if error is None and more:
            if ep.think > 0:
                self.iit.add(self.env.now, 1.0)
                Timer(self.env, ep.think, self._after_think, att)
            else:
                self._statement(att)
            return
        att.conn = None
        pool.release(conn)  # COMMIT, or ROLLBACK in catch; release() in finally
        att.pod.finish(att, error)

    def _after_think(self, timer: Timer) -> None:
        self.iit.add(self.env.now, -1.0)
        att = timer.arg
        if att.gen != att.pod.gen:
            att.pool.release(att.conn, True)
            att.conn = None
            return
        self._statement(att)
