"""The scenario layer: TOML files validated once into frozen `*Config` models.

`models.py` the models (one per table; the database's in `database_config.py`, the pods'
in `pod_config.py`, their field types in `fields.py`), `rules.py` their cross-field rules (one
function each), `crosscheck.py` those rules on the raw data (every error at once),
`files.py` reading, `--set` overrides and the resolved TOML, `errors.py` one line
per problem, `durations.py` "1m30s" and back, `workload.py` the requests a run
asks for, `triggers.py` the incidents and phases as data, `textbook.py` the pool
as a textbook queue. Everything above this layer takes the models, never raw dicts.
"""
from .errors import ScenarioError
from .files import apply_overrides, load_scenario, scenario_from_dict, scenario_from_toml, scenario_to_toml
from .models import (
    AnalysisConfig,
    AutoscalerConfig,
    BalancerConfig,
    ClientConfig,
    DatabaseConfig,
    EndpointConfig,
    IncidentConfig,
    PgBouncerConfig,
    PhaseConfig,
    PodConfig,
    PoolConfig,
    ProbeConfig,
    Scenario,
    ScheduleStepConfig,
    ServerlessConfig,
    ServiceConfig,
    TrafficConfig,
)
from .workload import MAX_REQUESTS, bucket_problem, expected_requests, requests_by_service, workload_problem

__all__ = [
    "AnalysisConfig", "AutoscalerConfig", "BalancerConfig", "ClientConfig", "DatabaseConfig",
    "EndpointConfig", "IncidentConfig", "PgBouncerConfig", "PhaseConfig", "PodConfig", "PoolConfig", "ProbeConfig",
    "Scenario",
    "MAX_REQUESTS", "ScenarioError", "ScheduleStepConfig", "ServerlessConfig", "ServiceConfig", "TrafficConfig",
    "apply_overrides",
    "expected_requests", "bucket_problem", "load_scenario", "requests_by_service", "scenario_from_dict",
    "scenario_from_toml",
    "scenario_to_toml", "workload_problem",
]
