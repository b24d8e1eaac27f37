"""The pod tables of a scenario: the pods of a service, their schedule and their autoscaler."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from ..vocabulary import SIGNALS
from . import rules
from .durations import parse_duration
from .errors import show
from .fields import Bool, Duration, Float, Int, PositiveDuration, _d, _problems, _Table


class ScheduleStepConfig(_Table):
    """At `at`, the deployment is set to `replicas` pods (a deploy, an operator)."""

    at: Duration
    replicas: Annotated[Int, Field(ge=0)]


class ProbeConfig(_Table):
    """A liveness or readiness probe (Kubernetes' defaults): an HTTP GET every `period` that the
    pod's event loop must answer within `timeout`; `failure_threshold` misses in a row fail it."""

    period: PositiveDuration = _d("10s")
    timeout: PositiveDuration = _d("1s")
    failure_threshold: Annotated[Int, Field(ge=1)] = 3
    initial_delay: Duration = 0.0  # after the app listens (the end of `startup`)


class PodConfig(_Table):
    """Pods of a service: count, lifecycle, event-loop CPU per attempt, warm-up, shedding."""

    replicas: Annotated[Int, Field(ge=1)] = 1
    cpu_per_request: Duration = _d("1ms")
    # node-postgres handling one statement's result on the event loop (parse rows, run the callback):
    # an estimate, ~10k simple queries/s on one core; the connection is released only after it
    query_result_cpu: Duration = _d("100us")
    # a new pod's image pull, before its container starts; a restarted container finds the image on the
    # node. 0: the node has it already (imagePullPolicy IfNotPresent, the deployment ran there before)
    image_pull: Duration = _d("0s")
    startup: Duration = _d("10s")  # the container's start (boot, the app's start) once the image is there
    warm_connections: Annotated[Int, Field(ge=0)] = 0
    require_db_at_start: Bool = False
    # clients a pod running at time 0 leaked before it (its uptime's leaks: see leak.toml)
    leaked_at_start: Annotated[Int, Field(ge=0)] = 0
    crash_on_pool_error: Bool = False
    crash_on_client_error: Bool = True
    max_inflight: Annotated[Int, Field(ge=0)] = 0
    # client.on('error') calls client.release(err): the pool drops the dead client and opens anew
    release_on_client_error: Bool = False
    # Netflix concurrency-limits' AIMDLimit, with its defaults: shed above a limit that grows by 1
    # while busy and shrinks x aimd_backoff_ratio on a drop or an attempt slower than aimd_timeout
    adaptive_concurrency: Bool = False
    aimd_initial: Annotated[Int, Field(ge=1)] = 20
    aimd_min: Annotated[Int, Field(ge=1)] = 20
    aimd_max: Annotated[Int, Field(ge=1)] = 200
    aimd_backoff_ratio: Annotated[Float, Field(ge=0.5, lt=1)] = 0.9
    aimd_timeout: PositiveDuration = _d("5s")
    schedule: list[ScheduleStepConfig] = []
    # The container's memory: the process at rest, and what each request it holds in flight keeps alive (the
    # HTTP request and response, the socket, the handler's closure and promise, a pool waiter and its timer).
    # Past `memory_limit_mb` (resources.limits.memory; 0: none, as in a bare Deployment) the kernel kills it
    # (OOMKilled). Estimates: a small Express app at rest; ~16 KB a connection (120k idle Express connections
    # filled 2 GB, a published test)
    memory_limit_mb: Annotated[Float, Field(ge=0)] = 0.0
    memory_base_mb: Annotated[Float, Field(ge=0)] = 64.0
    request_memory_kb: Annotated[Float, Field(ge=0)] = 16.0
    # On SIGTERM (a scale-down): the article's handler ends the pool once the requests in flight are answered
    # (`pool.end()`); false: Node's default, the process exits at once (its requests fail, its sockets close)
    graceful_shutdown: Bool = True
    # the kubelet's probes, answered by the event loop: off unless set, as in a bare Deployment
    liveness: ProbeConfig | None = None
    readiness: ProbeConfig | None = None

    RULES = (rules.release_needs_listener, rules.aimd_bounds, rules.memory_limit_above_base)


def _target_by_signal(data: Any) -> Any:
    """A metric's target as its signal reads it: a latency's a duration ("200ms"), the others plain numbers."""
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


_Signal = Literal[tuple(SIGNALS)]  # type: ignore[valid-type]  (the rows of vocabulary.SIGNALS)


class MetricConfig(_Table):
    """One metric of an HPA that reads several (`metrics`): a signal and its target, as `signal`/`target`."""

    signal: _Signal  # type: ignore[valid-type]
    target: Annotated[float, Field(gt=0)]

    @model_validator(mode="before")
    @classmethod
    def _target_by_signal(cls, data: Any) -> Any:
        """A latency target is a duration ("200ms"); the others are plain numbers."""
        return _target_by_signal(data)


class AutoscalerConfig(_Table):
    """The Kubernetes HPA: every `period`, each metric over `window` against its target; the largest
    recommendation wins. One metric as `signal` and `target`, or several as `metrics`."""

    signal: _Signal | None = None  # type: ignore[valid-type]  ("cpu" unless `metrics` is given)
    target: Annotated[float, Field(gt=0)] | None = None
    metrics: Annotated[list[MetricConfig], Field(min_length=1)] | None = None
    min_replicas: Annotated[Int, Field(ge=1)] = 1
    max_replicas: Annotated[Int, Field(ge=1)]
    period: PositiveDuration = _d("15s")
    window: PositiveDuration = _d("30s")
    tolerance: Annotated[Float, Field(ge=0)] = 0.1
    scale_down_stabilization: Duration = _d("300s")

    RULES = (rules.replicas_min_within_max, rules.one_metric_or_several, rules.metrics_distinct)

    @model_validator(mode="before")
    @classmethod
    def _target_by_signal(cls, data: Any) -> Any:
        """`signal` is "cpu" unless given or `metrics` lists them; a latency target is a duration."""
        if isinstance(data, dict) and "metrics" not in data and "signal" not in data:
            data = {**data, "signal": "cpu"}
        return _target_by_signal(data)

    @property
    def specs(self) -> list[MetricConfig]:
        """The metrics it reads, in order: `metrics`, or the one `signal` and `target`."""
        if self.metrics is not None:
            return list(self.metrics)
        return [MetricConfig(signal=self.signal or "cpu", target=self.target)]
