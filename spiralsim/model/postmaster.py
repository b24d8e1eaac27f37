"""What a connect costs the server: the postmaster's one loop, then the new backend's CPU.

PostgreSQL's postmaster is single-threaded: it accepts each connect and forks its
backend one at a time, in arrival order (facts.md §2: it fell behind at about
1,400 connections/s in Recall.ai's incident, connects then waited 10-15 s). So
connects queue FIFO for it, each served in 1/`accept_rate` seconds; since the
service time is fixed, a connect's acceptance time is known when it arrives.
Then the backend forks and authenticates: `connect_cpu` seconds of CPU on the
database's cores (facts.md §2: ~0.2 ms fork + ~3.2 ms SCRAM-SHA-256), shared
with the statements (`CpuShare`), so a connection storm slows every query.

A refused connect costs too (facts.md §2: "a rejected connection still costs a
fork and backend start"): PostgreSQL checks the reserved slots in
`InitPostgres` *after* `PerformAuthentication` (postinit.c, the commit facts.md
cites), so a refusal for reserved slots pays the full `connect_cpu`; "sorry,
too many clients already" (no free PGPROC, `InitProcess`, before
authentication) and a refusal while the server starts up pay the fork and
backend start only, `refused_connect_cpu`. The postmaster's own time is its
queue; its fork's CPU is part of the backend's cost above.
"""
from __future__ import annotations


class Postmaster:
    """The postmaster's accept loop: one connect at a time, FIFO, 1/`accept_rate` each (0: no limit)."""

    __slots__ = ("service", "free_at")

    def __init__(self, accept_rate: float):
        self.service = 1.0 / accept_rate if accept_rate > 0 else 0.0
        self.free_at = 0.0  # when the loop has accepted every connect that reached it so far

    def accept(self, arrive: float) -> float:
        """When a connect reaching the postmaster at `arrive` has been accepted (arrivals in time order)."""
        start = arrive if arrive > self.free_at else self.free_at
        self.free_at = start + self.service
        return self.free_at


class BackendStart:
    """A new backend's fork and authentication on the cores: a `CpuShare` job nobody waits for."""

    __slots__ = ("dead", "conn")

    def __init__(self) -> None:
        self.dead = False
        self.conn = None  # (a statement's is its connection: `Database._after_cpu` tells them apart)
