"""The database tables of a scenario: PostgreSQL (`[database]`) and PgBouncer in front of it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from . import rules
from .fields import Duration, Int, _d, _Table


class DatabaseConfig(_Table):
    """PostgreSQL: connection slots, connect cost, CPU cores."""

    max_connections: Annotated[Int, Field(ge=1)] = 100
    superuser_reserved_connections: Annotated[Int, Field(ge=0)] = 3
    other_connections: Annotated[Int, Field(ge=0)] = 0
    connect_time: Duration = _d("30ms")
    cores: Annotated[Int, Field(ge=1)] = 4
    statement_timeout: Duration = 0.0
    idle_in_transaction_session_timeout: Duration = 0.0
    read_replicas: Annotated[Int, Field(ge=0, le=64)] = 0  # servers of their own, each with the settings above

    RULES = (rules.reserved_within_max,)


class PgBouncerConfig(_Table):
    """PgBouncer between a service's pods and the database (1.25's defaults)."""

    pool_mode: Literal["session", "transaction"] = "session"
    default_pool_size: Annotated[Int, Field(ge=1)] = 20
    max_client_conn: Annotated[Int, Field(ge=1)] = 100
    query_wait_timeout: Duration = _d("120s")  # 0 waits forever
    server_login_retry: Duration = _d("15s")
