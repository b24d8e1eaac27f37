"""spiralsim: a discrete-event simulator of the connection-pool death spiral.

The layers, each importing only those before it: vocabulary (the shared tables),
scenario (config models and files), metrics (what a run records), model (the
SimPy components), analysis (what a run means), report (what a user reads),
then `simulate` and the command line.
"""
from .analysis import Result
from .analysis.check import check
from .report import dashboard, render_report, summary_lines, write_run
from .scenario import Scenario, ScenarioError, load_scenario, scenario_from_dict, scenario_from_toml
from .simulate import simulate

__all__ = [
    "Result",
    "Scenario",
    "ScenarioError",
    "check",
    "dashboard",
    "load_scenario",
    "render_report",
    "scenario_from_dict",
    "scenario_from_toml",
    "simulate",
    "summary_lines",
    "write_run",
]
