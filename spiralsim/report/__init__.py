"""The report layer: everything a user reads of a run.

`format.py` the formatters every line goes through, `console.py` the summary the
command line prints, `run_view.py` look-ups into a run by service and time,
`timeline.py` and `postmortem.py` the post-mortem in Markdown, `dashboard.py`
the figure, `run_folder.py` the six files of a run folder.
"""
from .console import summary_lines
from .dashboard import dashboard
from .postmortem import render_report
from .run_folder import FILES, write_run

__all__ = ["FILES", "dashboard", "render_report", "summary_lines", "write_run"]
