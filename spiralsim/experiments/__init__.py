"""The experiments layer: more than one run of a scenario, with common random numbers.

`compare.py` runs a baseline and named variants side by side (`compare_report.py`
its table and Markdown, `overlay.py` its figure); `sweep.py` runs a grid of
settings x seeds in parallel (local processes, or a Dask cluster) and maps where
a system stops recovering by itself (`sweep_run.py` one run, `sweep_map.py` the
map); `counterfactuals.py` is the registry of the article's defences and
`postmortem.py` runs each alone against an incident.
"""
from .compare import Comparison, compare
from .postmortem import Counterfactuals, counterfactual_postmortem, render_counterfactuals
from .sweep import sweep
from .sweep_map import cells, draw_map

__all__ = ["Comparison", "Counterfactuals", "cells", "compare", "counterfactual_postmortem", "draw_map",
           "render_counterfactuals", "sweep"]
