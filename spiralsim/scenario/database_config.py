"""The database tables of a scenario: PostgreSQL (`[database]`) and PgBouncer in front of it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from . import rules
from .fields import Bool, Duration, Float, Int, _d, _Table


class DatabaseConfig(_Table):
    """PostgreSQL: connection slots, connect cost, CPU cores and their contention, keepalive."""

    max_connections: Annotated[Int, Field(ge=1)] = 100
    superuser_reserved_connections: Annotated[Int, Field(ge=0)] = 3
    other_connections: Annotated[Int, Field(ge=0)] = 0
    connect_time: Duration = _d("30ms")
    cores: Annotated[Int, Field(ge=1)] = 4
    statement_timeout: Duration = 0.0
    idle_in_transaction_session_timeout: Duration = 0.0
    read_replicas: Annotated[Int, Field(ge=0, le=64)] = 0  # servers of their own, each with the settings above
    # What a connect costs the server (facts.md §2: fork ~0.2 ms + SCRAM-SHA-256 ~3.2 ms; postmaster ~1,400/s)
    connect_cpu: Duration = _d("3.4ms")          # backend fork + authentication, on the cores
    refused_connect_cpu: Duration = _d("0.2ms")  # a refusal before authentication: the fork and backend start
    accept_rate: Annotated[Float, Field(ge=0)] = 1400.0  # connects/s the postmaster accepts, one at a time; 0: no limit
    # Throughput past the cores: the Universal Scalability Law, fitted to facts.md's 4-core pgbench figures
    contention: Bool = True
    contention_sigma: Annotated[Float, Field(ge=0)] = 0.0
    contention_kappa: Annotated[Float, Field(ge=0)] = 1.875e-5
    # When the server frees a silently dropped session (Linux and PostgreSQL defaults; 0: the OS default)
    tcp_keepalives_idle: Duration = _d("7200s")
    tcp_keepalives_interval: Duration = _d("75s")
    tcp_keepalives_count: Annotated[Int, Field(ge=0)] = 9
    client_connection_check_interval: Duration = 0.0
    # Memory (MB): off unless memory_mb is set. PostgreSQL's defaults: shared_buffers 128 MB, work_mem 4 MB;
    # ~1.7 MB private per idle backend (facts.md §2); the swap slowdown is an estimate, not a measurement
    memory_mb: Annotated[Float, Field(ge=0)] = 0.0
    shared_buffers_mb: Annotated[Float, Field(ge=0)] = 128.0
    backend_mb: Annotated[Float, Field(ge=0)] = 1.7
    work_mem_mb: Annotated[Float, Field(ge=0)] = 4.0
    work_mem_per_statement: Annotated[Float, Field(ge=0)] = 1.0  # sort and hash nodes, each up to work_mem
    swap_slowdown: Annotated[Float, Field(ge=1)] = 10.0
    # A long-lived backend's caches grow (model/memory.py): MB per statement it runs, up to backend_max_mb; a new
    # connection is a new backend at backend_mb. Off (0) by default; the cap is an estimate (reference.md)
    backend_growth_mb: Annotated[Float, Field(ge=0)] = 0.0
    backend_max_mb: Annotated[Float, Field(ge=0)] = 50.0

    RULES = (rules.reserved_within_max, rules.backend_grows_to_its_cap)

    def memory_used_mb(self, backends: float, running: float) -> float:
        """MB the server holds with `backends` backends and `running` statements (shared buffers besides)."""
        return (self.shared_buffers_mb + backends * self.backend_mb
                + running * self.work_mem_mb * self.work_mem_per_statement)

    def largest_backend_mb(self) -> float:
        """MB of one backend's private memory at its largest: `backend_mb`, or `backend_max_mb` when it grows."""
        return max(self.backend_mb, self.backend_max_mb) if self.backend_growth_mb > 0 else self.backend_mb

    def worst_case_memory_mb(self) -> float:
        """The article's rough rule for the worst case: every slot a backend running a statement (each
        backend grown to its cap when backends grow)."""
        grown = self.max_connections * (self.largest_backend_mb() - self.backend_mb)
        return self.memory_used_mb(self.max_connections, self.max_connections) + grown


class PgBouncerConfig(_Table):
    """PgBouncer between a service's pods and the database (1.25's defaults)."""

    pool_mode: Literal["session", "transaction"] = "session"
    default_pool_size: Annotated[Int, Field(ge=1)] = 20
    max_client_conn: Annotated[Int, Field(ge=1)] = 100
    query_wait_timeout: Duration = _d("120s")  # 0 waits forever
    server_login_retry: Duration = _d("15s")
