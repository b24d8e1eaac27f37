"""spiralsim: a discrete-event simulator of the connection-pool death spiral."""
from .result import Result, simulate
from .scenario import Scenario, ScenarioError, load_scenario, scenario_from_dict, scenario_from_toml

__all__ = [
    "Result",
    "Scenario",
    "ScenarioError",
    "load_scenario",
    "scenario_from_dict",
    "scenario_from_toml",
    "simulate",
]
