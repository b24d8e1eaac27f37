"""The shared PostgreSQL: connection slots, connects and refusals, statement execution.

A statement's CPU part is served by `cores` shared among the active statements
(processor sharing: more concurrent statements than cores slows every one of
them), its wait part (I/O, locks) is a plain delay. Slots: apps may hold at most
max_connections - superuser_reserved_connections - other_connections; one more
connect is refused with SQLSTATE 53300 after costing the connect time.
"""
from __future__ import annotations

from heapq import heappop, heappush
from typing import Callable

from simpy import Environment

from ..metrics import Recorder
from .timer import Deadline, Timer

RESERVED_TEXT = "remaining connection slots are reserved for non-replication superuser connections"
FULL_TEXT = "sorry, too many clients already"


class Statement:
    """One running statement; `phase` 0 = CPU, 1 = wait, 2 = ended."""

    __slots__ = ("wait", "done", "arg", "phase", "dead")

    def __init__(self, wait: float, done: Callable[[object, str | None], None], arg: object):
        self.wait = wait
        self.done = done
        self.arg = arg
        self.phase = 0
        self.dead = False


class CpuShare:
    """Processor sharing over `cores`: n jobs each progress at min(1, cores/n).

    Virtual time V advances at that rate; a job finishes when V reaches its
    finish tag (V at arrival + work). One pending Timer, replaced when the
    next finish moves (a stale one sees a changed generation and does nothing).
    """

    def __init__(self, env: Environment, cores: int, on_busy: Callable[[float], None],
                 on_done: Callable[[Statement], None]):
        self.env = env
        self.on_done = on_done
        self.cores = cores
        self.n = 0
        self.v = 0.0
        self.t_last = 0.0
        self.heap: list = []
        self.seq = 0
        self.gen = 0
        self.next_tag = float("inf")
        self.on_busy = on_busy

    def _advance(self) -> None:
        now = self.env.now
        n = self.n
        if n and now > self.t_last:
            self.v += (now - self.t_last) * (1.0 if n <= self.cores else self.cores / n)
        self.t_last = now

    def _reschedule(self) -> None:
        heap = self.heap
        while heap and heap[0][2].dead:
            heappop(heap)
        self.gen += 1
        if not heap:
            self.next_tag = float("inf")
            return
        tag = heap[0][0]
        n = self.n
        rate = 1.0 if n <= self.cores else self.cores / n
        self.next_tag = tag
        Timer(self.env, max(tag - self.v, 0.0) / rate, self._on_finish, self.gen)

    def add(self, work: float, job: Statement) -> None:
        """Start `work` CPU-seconds for `job`; `on_done(job)` runs when it has been served."""
        self._advance()
        self.n += 1
        tag = self.v + work
        self.seq += 1
        heappush(self.heap, (tag, self.seq, job))
        self.on_busy(min(self.n, self.cores) / self.cores)
        if self.n > self.cores or tag < self.next_tag:
            self._reschedule()

    def cancel(self, job: Statement) -> None:
        """Withdraw a running job (statement_timeout); its heap entry is skipped later."""
        self._advance()
        job.dead = True
        self.n -= 1
        self.on_busy(min(self.n, self.cores) / self.cores)
        self._reschedule()

    def _on_finish(self, timer: Timer) -> None:
        if timer.arg != self.gen:
            return
        self._advance()
        heap = self.heap
        limit = self.v + 1e-12
        finished = []
        while heap and (heap[0][2].dead or heap[0][0] <= limit):
            _, _, job = heappop(heap)
            if not job.dead:
                job.dead = True
                self.n -= 1
                finished.append(job)
        self.on_busy(min(self.n, self.cores) / self.cores)
        self._reschedule()
        on_done = self.on_done
        for job in finished:
            on_done(job)


class Database:
    """PostgreSQL as the pods see it: slots, connect time, statements, statement_timeout."""

    def __init__(self, env: Environment, config, recorder: Recorder):
        self.env = env
        self.config = config
        self.recorder = recorder
        self.series = recorder.db
        self.connect_time = config.connect_time
        self.max_connections = config.max_connections
        self.reserved_from = config.max_connections - config.superuser_reserved_connections
        self.other = config.other_connections
        self.statement_timeout = config.statement_timeout
        self.held = 0  # app connections (established or being set up)
        self.cpu = CpuShare(env, config.cores, self._on_busy, self._after_cpu)
        self.first_refusal = True
        self.series.connections.set(0.0, float(self.other))

    def _on_busy(self, utilization: float) -> None:
        self.series.busy_cores.set(self.env.now, utilization)

    # --- connections -------------------------------------------------------
    def try_take_slot(self) -> str | None:
        """Claim a slot for a new connection; the refusal text when there is none."""
        used = self.held + self.other
        if used >= self.max_connections:
            return FULL_TEXT
        if used >= self.reserved_from:
            return RESERVED_TEXT
        self.held += 1
        self.series.connections.set(self.env.now, float(self.held + self.other))
        return None

    def free_slot(self) -> None:
        """A connection closed (by the pool, a crash, or a failed connect)."""
        self.held -= 1
        self.series.connections.set(self.env.now, float(self.held + self.other))

    def note_refusal(self, service: str, text: str) -> None:
        """Count a refused connect; the first one is an event."""
        now = self.env.now
        self.series.refused[int(now * self.recorder.inv_bucket)] += 1
        if self.first_refusal:
            self.first_refusal = False
            self.recorder.event(
                now, service, "first_refused_connect",
                f"{text} (database holds {self.held + self.other} of {self.max_connections}, "
                f"{self.reserved_from - self.other} usable by apps)",
            )

    # --- statements --------------------------------------------------------
    def execute(self, cpu: float, wait: float, done: Callable[[object, str | None], None], arg: object) -> None:
        """Run one statement (seconds of CPU, seconds of wait); then `done(arg, error_kind or None)`."""
        stmt = Statement(wait, done, arg)
        self.series.active.add(self.env.now, 1.0)
        if self.statement_timeout > 0:
            Deadline(self.env, self.statement_timeout, self._on_timeout, stmt)
        if cpu > 0:
            self.cpu.add(cpu, stmt)
        elif wait > 0:
            stmt.phase = 1
            Timer(self.env, wait, self._after_wait, stmt)
        else:
            self._finish(stmt, None)

    def _after_cpu(self, stmt: Statement) -> None:
        if stmt.wait > 0:
            stmt.phase = 1
            Timer(self.env, stmt.wait, self._after_wait, stmt)
        else:
            self._finish(stmt, None)

    def _after_wait(self, timer: Timer) -> None:
        stmt: Statement = timer.arg
        if stmt.phase != 2:
            self._finish(stmt, None)

    def _on_timeout(self, timer: Timer) -> None:
        stmt: Statement = timer.arg
        if stmt.phase == 2:
            return
        if stmt.phase == 0:
            self.cpu.cancel(stmt)
        self._finish(stmt, "statement_timeout")

    def _finish(self, stmt: Statement, error: str | None) -> None:
        stmt.phase = 2
        self.series.active.add(self.env.now, -1.0)
        stmt.done(stmt.arg, error)
