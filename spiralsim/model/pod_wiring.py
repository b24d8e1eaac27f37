"""What every pod of one service shares (`PodWiring`), apart from the pod itself to keep pod.py short."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..metrics import Recorder, ServiceSeries
from ..scenario import PodConfig, PoolConfig
from .connection import Connector
from .handler import Handler
from .request import Attempt


@dataclass(frozen=True)
class PodWiring:
    """What every pod of one service shares: its settings, what its pools connect to (the
    database, or the service's PgBouncer), where its answers and records go, the
    balancer's list of ready pods (kept by the pods), and the read replicas it keeps a
    pool for (none unless an endpoint of the service reads)."""

    service: str
    config: PodConfig
    pool_config: PoolConfig
    connector: Connector
    series: ServiceSeries
    recorder: Recorder
    respond: Callable[[Attempt, str | None], None]
    handler: Handler
    ready: list  # the service's ready `Pod`s
    replicas: tuple[Connector, ...] = ()
    busy_loops: dict = field(default_factory=dict)  # their event loops that may be behind (event_loop.py)
