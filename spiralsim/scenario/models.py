"""The scenario: a TOML file (see SCENARIO.md) validated once into frozen models.

Field names are the TOML keys; every duration is float seconds. Overrides
(`--set PATH=VALUE`) are applied to the raw data before validation, so they
get the same checks. Every problem of a file is reported at once, one line
each, by `ScenarioError`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from ..vocabulary import FAILURE_KINDS
from . import rules
from .database_config import DatabaseConfig, PgBouncerConfig
from .errors import show
from .fields import (
    Bool,
    Duration,
    DurationMark,
    FileName,
    Float,
    Int,
    PositiveDuration,
    Probability,
    Str,
    _d,
    _Table,
)
from .pod_config import AutoscalerConfig, PodConfig, ProbeConfig, ScheduleStepConfig

__all__ = [
    "AnalysisConfig",
    "AutoscalerConfig",
    "BalancerConfig",
    "ClientConfig",
    "DatabaseConfig",
    "DurationMark",
    "EndpointConfig",
    "IncidentConfig",
    "PgBouncerConfig",
    "PhaseConfig",
    "PodConfig",
    "PoolConfig",
    "ProbeConfig",
    "Scenario",
    "ScheduleStepConfig",
    "ServerlessConfig",
    "ServiceConfig",
    "TrafficConfig",
    "VariantConfig",
]


class PhaseConfig(_Table):
    """A window [start, end) of the traffic at `rate` per second (ramped if `ramp`)."""

    start: Duration
    end: Duration
    rate: Annotated[Float, Field(ge=0)]
    ramp: Bool = False

    RULES = (rules.phase_forwards,)


class TrafficConfig(_Table):
    """Poisson arrivals of user requests: a base rate per second and phases."""

    rate: Annotated[Float, Field(ge=0)]
    phases: list[PhaseConfig] = []
    arrivals: Literal["poisson", "deterministic"] = "poisson"

    RULES = (rules.phases_apart,)


class EndpointConfig(_Table):
    """One kind of request: its statements, their times and failure rate."""

    weight: Annotated[Float, Field(ge=0)] = 1.0
    kind: Literal["query", "transaction"] = "query"
    statements: Annotated[Int, Field(ge=1)] = 1
    think: Duration = 0.0
    statement_cpu: Duration = _d("1ms")
    statement_wait: Duration = _d("4ms")
    distribution: Literal["deterministic", "exponential", "lognormal"] = "exponential"
    sigma: Annotated[Float, Field(gt=0)] = 1.0
    error_rate: Probability = 0.0
    transient_error_rate: Probability = 0.0
    leak_on_error: Bool = False
    orphan_rate: Probability = 0.0
    lock_conflict: Probability = 0.0
    # multi-tenant row-level security: SET ROLE per request, and the share that skips RESET ROLE
    set_role: Bool = False
    role_leak_rate: Probability = 0.0
    reads: Bool = False  # its statements go to a read replica, through the pod's pool for that replica

    RULES = (rules.query_cannot_leak, rules.query_cannot_orphan, rules.role_needs_a_client, rules.reads_are_queries)


FailureKindName = Literal[tuple(k.name for k in FAILURE_KINDS)]  # type: ignore[valid-type]
#: What a client retries unless told otherwise: the kinds marked retryable (timeouts and 5xx).
DEFAULT_RETRY_ON: tuple[str, ...] = tuple(k.name for k in FAILURE_KINDS if k.retryable)


class ClientConfig(_Table):
    """The caller: per-attempt timeout (0 = none), retries, backoff and jitter, and its
    defences (retry budget, circuit breaker, adaptive throttling), each off by default."""

    timeout: Duration = _d("10s")
    max_attempts: Annotated[Int, Field(ge=1)] = 1
    # `random`: an exponentially distributed wait of mean backoff_base (a queueing model's retrial orbit)
    backoff: Literal["none", "exponential", "random"] = "none"
    backoff_base: Duration = _d("100ms")
    backoff_cap: Duration = _d("20s")
    jitter: Literal["none", "full", "equal", "decorrelated"] = "none"
    retry_on: list[FailureKindName] = list(DEFAULT_RETRY_ON)
    # retries allowed per success (a token bucket, the SRE book's 10 %: 0.1); 0 off
    retry_budget: Annotated[Float, Field(ge=0)] = 0.0
    circuit_breaker: Bool = False  # Hystrix's defaults below
    breaker_error_rate: Probability = 0.5
    breaker_window: PositiveDuration = _d("10s")
    breaker_min_requests: Annotated[Int, Field(ge=1)] = 20
    breaker_open: PositiveDuration = _d("5s")
    # the SRE book's adaptive throttling: reject locally with max(0, (requests - K accepts) / (requests + 1))
    throttle_k: Annotated[Float, Field(ge=0)] = 0.0
    throttle_window: PositiveDuration = _d("2m")

    RULES = (rules.throttle_k_off_or_above_one,)


class BalancerConfig(_Table):
    """The load balancer: routing policy and upstream timeout (0 = none)."""

    policy: Literal["round_robin", "least_outstanding", "random"] = "round_robin"
    upstream_timeout: Duration = _d("30s")


class PoolConfig(_Table):
    """node-postgres pg.Pool knobs (0 = off / forever, as in pg-pool)."""

    max: Annotated[Int, Field(ge=1)] = 10
    min: Annotated[Int, Field(ge=0)] = 0
    acquire_timeout: Duration = 0.0
    idle_timeout: Duration = _d("10s")
    max_lifetime: Duration = 0.0
    max_uses: Annotated[Int, Field(ge=0)] = 0
    query_timeout: Duration = 0.0  # node-postgres's client-side query_timeout: a timer on the event loop

    RULES = (rules.pool_min_within_max,)


class RoleConfig(_Table):
    """The service's database role: `ALTER ROLE app_user SET ...`, which beats the server's setting for
    every session of that role (unset: the server's)."""

    statement_timeout: Duration | None = None
    idle_in_transaction_session_timeout: Duration | None = None


class ServerlessConfig(_Table):
    """A service of functions (Lambda, Vercel): each instance serves one request at a time,
    starts cold (`pod.startup`) when none is idle, is frozen between requests and reaped
    after `idle_reap`; each has its own pool."""

    max_instances: Annotated[Int, Field(ge=1)] = 1000  # AWS Lambda's default account concurrency
    idle_reap: PositiveDuration = _d("10m")
    # between requests an instance is frozen: its timers stop, so its pool's idle_timeout never
    # closes the connections it holds until it is reaped
    freeze: Bool = True


class ServiceConfig(_Table):
    """One service sharing the database: its traffic, endpoints and layers."""

    traffic: TrafficConfig
    endpoints: Annotated[dict[str, EndpointConfig], Field(min_length=1)]
    client: ClientConfig = ClientConfig()
    balancer: BalancerConfig = BalancerConfig()
    pod: PodConfig = PodConfig()
    pool: PoolConfig = PoolConfig()
    role: RoleConfig = RoleConfig()
    autoscaler: AutoscalerConfig | None = None
    pgbouncer: PgBouncerConfig | None = None
    serverless: ServerlessConfig | None = None

    RULES = (rules.warm_within_pool, rules.some_endpoint_weighted, rules.serverless_scales_itself,
             rules.leaks_need_a_leaky_endpoint)

    def statement_timeout(self, database: DatabaseConfig) -> float:
        """The statement_timeout its sessions get: its role's, else the server's."""
        t = self.role.statement_timeout
        return database.statement_timeout if t is None else t

    def idle_in_transaction_session_timeout(self, database: DatabaseConfig) -> float:
        """The idle_in_transaction_session_timeout its sessions get: its role's, else the server's."""
        t = self.role.idle_in_transaction_session_timeout
        return database.idle_in_transaction_session_timeout if t is None else t


class IncidentConfig(_Table):
    """A trigger: changes parameters during [start, end)."""

    kind: Literal["slow_queries", "db_restart", "network_blip", "node_lost"]
    start: Duration
    end: Duration
    factor: Annotated[Float, Field(gt=0)] | None = None
    ramp: Bool = False  # slow_queries: the factor grows linearly from 1 at `start` to `factor` at `end`
    pods: Annotated[Int, Field(ge=1)] | None = None  # node_lost: each service's pods the node ran (1)
    services: Annotated[list[Str], Field(min_length=1)] | None = None
    endpoints: Annotated[list[Str], Field(min_length=1)] | None = None

    RULES = (rules.incident_factor, rules.incident_forwards)


class AnalysisConfig(_Table):
    """Thresholds that classify buckets as degraded and a run as recovered, the SLO the
    impact is measured against, and the alerts' thresholds (their only defaults)."""

    error_rate_threshold: Probability = 0.01
    latency_p99_threshold: Duration = _d("1s")  # also what makes a successful request `slow`
    settle: Duration = _d("60s")
    # The service level objective: the share of requests that must be good (not failed, not slow)
    # over the window; a run's bad requests are measured against that window's error budget.
    slo: Annotated[Float, Field(gt=0, lt=1)] = 0.999
    slo_window: PositiveDuration = _d("720h")
    # The article's alerts: thresholds and how long each must hold.
    pool_waiting_for: Duration = _d("10s")
    pool_saturation_share: Probability = 0.8
    pool_saturation_for: Duration = _d("30s")
    pool_collapse_share: Probability = 0.2
    pool_collapse_window: PositiveDuration = _d("10m")
    pool_collapse_for: Duration = _d("60s")
    db_connections_share: Probability = 0.8
    db_connections_for: Duration = _d("10s")
    idle_in_transaction_age: Duration = _d("30s")
    idle_in_transaction_for: Duration = _d("10s")
    # the article's budget for a "slow query day": "we tolerate 200ms p99 queries", alert when exceeded
    statement_p99_budget: PositiveDuration = _d("200ms")
    statement_budget_for: Duration = _d("60s")
    # the error-rate alert: failed requests above error_rate_threshold of those that ended, held this long
    # (awesome-prometheus-alerts' NginxHighHttp5xxErrorRate waits `for: 1m`)
    error_rate_for: Duration = _d("60s")


#: A variant's name: a plain identifier (it names a column of the comparison and a run folder).
_VARIANT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
BASELINE = "baseline"  # the name of the run without overrides: no variant may take it


def check_variant_name(name: str) -> str:
    """A pydantic after-validator: `name` unchanged, or ValueError saying why not."""
    if not _VARIANT_NAME.fullmatch(name):
        raise ValueError("must be a plain identifier (letters, digits, _ and -, starting with a letter or _),"
                         f" got {show(name)}")
    if name == BASELINE:
        raise ValueError(f"{BASELINE!r} names the run without overrides; choose another name")
    return name


def _distinct_variants(variants: list["VariantConfig"]) -> list["VariantConfig"]:
    names = [v.name for v in variants]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"each variant needs its own name; given more than once: {', '.join(twice)}")
    return variants


class VariantConfig(_Table):
    """A named set of `--set` overrides that `spiralsim compare` runs beside the scenario
    (checked when it is built); a plain run ignores it."""

    name: Annotated[Str, AfterValidator(check_variant_name)]
    set: list[Str]


class Scenario(_Table):
    """A whole validated scenario file."""

    name: FileName
    title: Str = ""
    description: Str = ""
    duration: PositiveDuration
    seed: Annotated[Int, Field(ge=0)] = 0
    bucket: PositiveDuration = _d("1s")
    database: DatabaseConfig = DatabaseConfig()
    services: Annotated[dict[str, ServiceConfig], Field(min_length=1)]
    incidents: list[IncidentConfig] = []
    analysis: AnalysisConfig = AnalysisConfig()
    # for `spiralsim compare` only: the simulation never reads them
    variants: Annotated[list[VariantConfig], AfterValidator(_distinct_variants)] = []
    RULES = (rules.reads_on_replicas, rules.nodes_under_pods)  # (across tables)

    @property
    def service_names(self) -> tuple[str, ...]:
        """Service names in file order."""
        return tuple(self.services)
