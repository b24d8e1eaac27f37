"""The database server's memory against its RAM: past it the kernel swaps, and a statement that starts
then runs `swap_slowdown` times slower (its pages go to disk and back): the cliff behind the article's
"adding zeros to max_connections can quietly push you to swap". What the server holds is
`DatabaseConfig.memory_used_mb` (shared buffers, each backend's private memory, work_mem per statement)
plus what its backends have grown.

A backend grows (`backend_growth_mb` > 0): the article's "memory bloat in the Postgres backend process" of a
long-lived connection. A backend caches the catalog rows and relation descriptors of every table it touches
(relcache, catcache) and frees them only when it exits; temp tables a session forgot keep their buffers
(`temp_buffers`, 8 MB by default). Both grow with what the session *runs*, not with its age: an idle
backend caches nothing new. So the model grows a backend by `backend_growth_mb` per statement it starts, up
to `backend_max_mb` (its caches hold every relation): per statement is also the cheap measure, one addition
when a statement starts and none on a timer. Real caches grow fast at first and slow down as fewer tables
are new; a straight line to the cap is the simple bound. A new connection is a new backend: rotation
(`pool.max_lifetime`, `max_uses`), an idle timeout, a crash or any other end frees all it grew.
"""
from __future__ import annotations

from ..scenario import DatabaseConfig
from .connection import Connection


class ServerMemory:
    """`factor(backends, running, now)`: how much slower a statement starting now runs; `used(...)` the MB held.
    With growth, `grown` holds each backend's MB above `backend_mb` by session id and `extra` their sum,
    kept as statements start (`grow`) and sessions end (`ended`): no pass over the backends."""

    __slots__ = ("ram", "config_used", "slowdown", "growth", "room", "grown", "extra",
                 "peak", "peak_at", "peak_backends", "peak_running", "peak_extra")

    def __init__(self, config: DatabaseConfig):
        self.ram = config.memory_mb
        self.config_used = config.memory_used_mb
        self.slowdown = config.swap_slowdown
        self.growth = config.backend_growth_mb
        self.room = config.largest_backend_mb() - config.backend_mb  # MB a backend may grow
        self.grown: dict[int, float] = {}  # session id -> MB it has grown (only those that ran a statement)
        self.extra = 0.0                   # their sum
        self.peak = -1.0  # the most the server held as a statement started, and then: when, backends, statements
        self.peak_at = 0.0
        self.peak_backends = 0.0
        self.peak_running = 0.0
        self.peak_extra = 0.0

    def used(self, backends: float, running: float) -> float:
        """MB the server holds with `backends` backends and `running` statements, grown backends included."""
        return self.config_used(backends, running) + self.extra

    def factor(self, backends: float, running: float, now: float) -> float:
        """`swap_slowdown` when the server holds more than its RAM, else 1 (a statement starts at `now`)."""
        used = self.config_used(backends, running) + self.extra
        if used > self.peak:
            self.peak, self.peak_at, self.peak_backends = used, now, backends
            self.peak_running, self.peak_extra = running, self.extra
        return self.slowdown if used > self.ram else 1.0

    def grow(self, session: int) -> None:
        """A statement starts on backend `session`: it grows by `backend_growth_mb`, up to its cap."""
        was = self.grown.get(session, 0.0)
        if was < self.room:
            now = was + self.growth
            if now > self.room:
                now = self.room
            self.grown[session] = now
            self.extra += now - was

    def ended(self, conn: Connection) -> None:
        """A session ended (its backend exits): what it grew is freed."""
        was = self.grown.pop(conn.id, 0.0)
        if was:
            self.extra = self.extra - was if self.grown else 0.0  # (no rounding left behind at none)


def mean_backend_mb(backend_mb: float, backends: float, extra: float) -> float:
    """MB per backend on average, `backends` of them (each `backend_mb` at least) with `extra` MB grown in all."""
    return backend_mb + extra / backends if backends else backend_mb
