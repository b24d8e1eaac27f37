"""The scenario layer: TOML files validated once into frozen `*Config` models.

`models.py` the models (one per table), `files.py` reading, `--set` overrides and
the resolved TOML, `errors.py` one line per problem, `durations.py` "1m30s" and
back, `triggers.py` the incidents and phases as data, `textbook.py` the pool as a
textbook queue. Everything above this layer takes the models, never raw dicts.
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
    PhaseConfig,
    PodConfig,
    PoolConfig,
    Scenario,
    ScheduleStepConfig,
    ServiceConfig,
    TrafficConfig,
)

__all__ = [
    "AnalysisConfig", "AutoscalerConfig", "BalancerConfig", "ClientConfig", "DatabaseConfig",
    "EndpointConfig", "IncidentConfig", "PhaseConfig", "PodConfig", "PoolConfig", "Scenario",
    "ScenarioError", "ScheduleStepConfig", "ServiceConfig", "TrafficConfig", "apply_overrides",
    "load_scenario", "scenario_from_dict", "scenario_from_toml", "scenario_to_toml",
]
