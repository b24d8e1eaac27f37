"""The database server's memory against its RAM: past it the kernel swaps, and a statement that starts
then runs `swap_slowdown` times slower (its pages go to disk and back): the cliff behind the article's
"adding zeros to max_connections can quietly push you to swap". What the server holds is
`DatabaseConfig.memory_used_mb`: shared buffers, each backend's private memory, work_mem per statement.
"""
from __future__ import annotations

from ..scenario import DatabaseConfig


class ServerMemory:
    """`factor(backends, running)`: how much slower a statement starting now runs; `used(...)` the MB held."""

    __slots__ = ("ram", "used", "slowdown")

    def __init__(self, config: DatabaseConfig):
        self.ram = config.memory_mb
        self.used = config.memory_used_mb
        self.slowdown = config.swap_slowdown

    def factor(self, backends: float, running: float) -> float:
        """`swap_slowdown` when the server holds more than its RAM, else 1."""
        return self.slowdown if self.used(backends, running) > self.ram else 1.0
