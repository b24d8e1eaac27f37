"""The scenario: a TOML file (see SCENARIO.md) validated once into frozen models.

Field names are the TOML keys; every duration is float seconds. Overrides
(`--set PATH=VALUE`) are applied to the raw data before validation, so they
get the same checks. Every problem of a file is reported at once, one line
each, by `ScenarioError`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, model_validator
from pydantic_core import PydanticCustomError

from ..vocabulary import SIGNALS
from .durations import format_duration, parse_duration
from .errors import show

__all__ = [
    "AnalysisConfig",
    "AutoscalerConfig",
    "BalancerConfig",
    "ClientConfig",
    "DatabaseConfig",
    "DurationMark",
    "EndpointConfig",
    "IncidentConfig",
    "PhaseConfig",
    "PodConfig",
    "PoolConfig",
    "Scenario",
    "ScheduleStepConfig",
    "ServiceConfig",
    "TrafficConfig",
]


class DurationMark:
    """Marks a field as a duration (written back as "5ms" by scenario_to_toml)."""


def _duration_type(minimum: float, inclusive: bool) -> Any:
    def check(value: object) -> float:
        seconds = parse_duration(value)
        if seconds < minimum or (seconds == minimum and not inclusive):
            raise ValueError(f"must be {'>=' if inclusive else '>'} {minimum:g}, got {show(value)}")
        return seconds

    return Annotated[float, BeforeValidator(check), DurationMark()]


Duration = _duration_type(0.0, inclusive=True)  # seconds, >= 0 (0 often means off)
PositiveDuration = _duration_type(0.0, inclusive=False)  # seconds, > 0
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]
Probability = Annotated[float, Strict(), Field(ge=0, le=1)]


def _d(text: str) -> float:
    return parse_duration(text)


def _problems(problems: list[tuple[tuple[str | int, ...], str]]) -> PydanticCustomError:
    """Errors at sub-paths of the model that raises this (see translate_errors)."""
    return PydanticCustomError("at_paths", "{problems}", {"problems": problems})


def _check_forwards(what: str, start: float, end: float) -> None:
    """A window [start, end) must end after it starts."""
    if end <= start:
        word = "before" if end < start else "equal to"
        raise ValueError(f"backwards {what}: end {format_duration(end)} is {word} start {format_duration(start)}")


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DatabaseConfig(_Table):
    """PostgreSQL: connection slots, connect cost, CPU cores."""

    max_connections: Annotated[Int, Field(ge=1)] = 100
    superuser_reserved_connections: Annotated[Int, Field(ge=0)] = 3
    other_connections: Annotated[Int, Field(ge=0)] = 0
    connect_time: Duration = _d("30ms")
    cores: Annotated[Int, Field(ge=1)] = 4
    statement_timeout: Duration = 0.0
    idle_in_transaction_session_timeout: Duration = 0.0

    @model_validator(mode="after")
    def _reserved_below_max(self) -> DatabaseConfig:
        if self.superuser_reserved_connections >= self.max_connections:
            raise _problems([(("superuser_reserved_connections",),
                              f"contradictory settings: must be < max_connections ({self.max_connections}),"
                              f" got {self.superuser_reserved_connections}")])
        return self


class PhaseConfig(_Table):
    """A window [start, end) of the traffic at `rate` per second (ramped if `ramp`)."""

    start: Duration
    end: Duration
    rate: Annotated[Float, Field(ge=0)]
    ramp: Bool = False

    @model_validator(mode="after")
    def _forwards(self) -> PhaseConfig:
        _check_forwards("phase", self.start, self.end)
        return self


class TrafficConfig(_Table):
    """Poisson arrivals of user requests: a base rate per second and phases."""

    rate: Annotated[Float, Field(ge=0)]
    phases: list[PhaseConfig] = []
    arrivals: Literal["poisson", "deterministic"] = "poisson"

    @model_validator(mode="after")
    def _no_overlap(self) -> TrafficConfig:
        problems = []
        for j, b in enumerate(self.phases):
            for i, a in enumerate(self.phases[:j]):
                if a.start < b.end and b.start < a.end:
                    problems.append((("phases", j), f"overlaps phases[{i}] ({format_duration(a.start)}"
                                     f"..{format_duration(a.end)} and {format_duration(b.start)}"
                                     f"..{format_duration(b.end)})"))
                    break
        if problems:
            raise _problems(problems)
        return self


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
    leak_on_error: Bool = False
    orphan_rate: Probability = 0.0
    lock_conflict: Probability = 0.0

    @model_validator(mode="after")
    def _transaction_only(self) -> EndpointConfig:
        problems = []
        if self.kind == "query" and self.leak_on_error:
            problems.append((("leak_on_error",), "contradictory settings: a query endpoint (pool.query) cannot"
                             " leak; use kind = \"transaction\" (pool.connect)"))
        if self.kind == "query" and self.orphan_rate > 0:
            problems.append((("orphan_rate",), "contradictory settings: a query endpoint (pool.query) opens no"
                             " transaction to orphan; use kind = \"transaction\""))
        if problems:
            raise _problems(problems)
        return self


class ClientConfig(_Table):
    """The caller: per-attempt timeout (0 = none), retries, backoff and jitter."""

    timeout: Duration = _d("10s")
    max_attempts: Annotated[Int, Field(ge=1)] = 1
    backoff: Literal["none", "exponential"] = "none"
    backoff_base: Duration = _d("100ms")
    backoff_cap: Duration = _d("20s")
    jitter: Literal["none", "full", "equal", "decorrelated"] = "none"


class BalancerConfig(_Table):
    """The load balancer: routing policy and upstream timeout (0 = none)."""

    policy: Literal["round_robin", "least_outstanding", "random"] = "round_robin"
    upstream_timeout: Duration = _d("30s")


class ScheduleStepConfig(_Table):
    """At `at`, the deployment is set to `replicas` pods (a deploy, an operator)."""

    at: Duration
    replicas: Annotated[Int, Field(ge=0)]


class PodConfig(_Table):
    """Pods of a service: count, lifecycle, event-loop CPU per attempt, warm-up, shedding."""

    replicas: Annotated[Int, Field(ge=1)] = 1
    cpu_per_request: Duration = _d("1ms")
    startup: Duration = _d("10s")
    warm_connections: Annotated[Int, Field(ge=0)] = 0
    require_db_at_start: Bool = False
    crash_on_pool_error: Bool = False
    crash_on_client_error: Bool = True
    max_inflight: Annotated[Int, Field(ge=0)] = 0
    schedule: list[ScheduleStepConfig] = []


class AutoscalerConfig(_Table):
    """The Kubernetes HPA: every `period`, the signal over `window` against `target`."""

    signal: Literal[tuple(SIGNALS)] = "cpu"  # type: ignore[valid-type]  (the rows of vocabulary.SIGNALS)
    target: Annotated[float, Field(gt=0)]
    min_replicas: Annotated[Int, Field(ge=1)] = 1
    max_replicas: Annotated[Int, Field(ge=1)]
    period: PositiveDuration = _d("15s")
    window: PositiveDuration = _d("30s")
    tolerance: Annotated[Float, Field(ge=0)] = 0.1
    scale_down_stabilization: Duration = _d("300s")

    @model_validator(mode="before")
    @classmethod
    def _target_by_signal(cls, data: Any) -> Any:
        """A latency target is a duration ("200ms"); the others are plain numbers."""
        if not isinstance(data, dict) or "target" not in data:
            return data
        target, signal = data["target"], data.get("signal", "cpu")
        if isinstance(target, bool):
            raise _problems([(("target",), f"expected a number, got {show(target)}")])
        if signal in SIGNALS and SIGNALS[signal].latency:
            try:
                seconds = parse_duration(target)
            except ValueError as exc:
                raise _problems([(("target",), str(exc))]) from None
            return {**data, "target": seconds}
        if not isinstance(target, (int, float)):
            raise _problems([(("target",), f"expected a number for signal {signal!r}"
                              f" (a utilization like 0.7 or a count per pod), got {show(target)}")])
        return {**data, "target": float(target)}

    @model_validator(mode="after")
    def _min_below_max(self) -> AutoscalerConfig:
        if self.min_replicas > self.max_replicas:
            raise _problems([(("min_replicas",), f"contradictory settings: must be <= max_replicas"
                              f" ({self.max_replicas}), got {self.min_replicas}")])
        return self


class PoolConfig(_Table):
    """node-postgres pg.Pool knobs (0 = off / forever, as in pg-pool)."""

    max: Annotated[Int, Field(ge=1)] = 10
    min: Annotated[Int, Field(ge=0)] = 0
    acquire_timeout: Duration = 0.0
    idle_timeout: Duration = _d("10s")
    max_lifetime: Duration = 0.0
    max_uses: Annotated[Int, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _min_below_max(self) -> PoolConfig:
        if self.min > self.max:
            raise _problems([(("min",), f"contradictory settings: must be <= max ({self.max}), got {self.min}")])
        return self


class ServiceConfig(_Table):
    """One service sharing the database: its traffic, endpoints and layers."""

    traffic: TrafficConfig
    endpoints: Annotated[dict[str, EndpointConfig], Field(min_length=1)]
    client: ClientConfig = ClientConfig()
    balancer: BalancerConfig = BalancerConfig()
    pod: PodConfig = PodConfig()
    pool: PoolConfig = PoolConfig()
    autoscaler: AutoscalerConfig | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ServiceConfig:
        problems = []
        if self.pod.warm_connections > self.pool.max:
            problems.append((("pod", "warm_connections"), f"contradictory settings: must be <= pool.max"
                             f" ({self.pool.max}), got {self.pod.warm_connections}"))
        if not any(e.weight > 0 for e in self.endpoints.values()):
            problems.append((("endpoints",), "every endpoint has weight 0; at least one must be > 0"))
        if problems:
            raise _problems(problems)
        return self


class IncidentConfig(_Table):
    """A trigger: changes parameters during [start, end)."""

    kind: Literal["slow_queries", "db_restart", "network_blip"]
    start: Duration
    end: Duration
    factor: Annotated[Float, Field(gt=0)] | None = None
    services: Annotated[list[Str], Field(min_length=1)] | None = None
    endpoints: Annotated[list[Str], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _forwards(self) -> IncidentConfig:
        if self.kind == "slow_queries" and self.factor is None:
            raise _problems([(("factor",), "required key is missing (slow_queries multiplies statement time)")])
        if self.kind != "slow_queries" and self.factor is not None:
            raise _problems([(("factor",), f"contradictory settings: only slow_queries takes a factor,"
                              f" not {self.kind}")])
        _check_forwards("window", self.start, self.end)
        return self


class AnalysisConfig(_Table):
    """Thresholds that classify buckets as degraded and a run as recovered."""

    error_rate_threshold: Probability = 0.01
    latency_p99_threshold: Duration = _d("1s")
    settle: Duration = _d("60s")
    # The article's alerts: thresholds and how long each must hold.
    pool_waiting_for: Duration = _d("10s")
    pool_saturation_share: Probability = 0.8
    pool_saturation_for: Duration = _d("30s")
    pool_collapse_share: Probability = 0.2
    pool_collapse_window: PositiveDuration = _d("10m")
    pool_collapse_for: Duration = _d("60s")
    db_connections_share: Probability = 0.8
    db_connections_for: Duration = _d("10s")
    idle_in_transaction_for: Duration = _d("10s")


class Scenario(_Table):
    """A whole validated scenario file."""

    name: Annotated[Str, Field(min_length=1)]
    title: Str = ""
    description: Str = ""
    duration: PositiveDuration
    seed: Annotated[Int, Field(ge=0)] = 0
    bucket: PositiveDuration = _d("1s")
    database: DatabaseConfig = DatabaseConfig()
    services: Annotated[dict[str, ServiceConfig], Field(min_length=1)]
    incidents: list[IncidentConfig] = []
    analysis: AnalysisConfig = AnalysisConfig()

    @property
    def service_names(self) -> tuple[str, ...]:
        """Service names in file order."""
        return tuple(self.services)
