"""The dashboard's event-loop panel: each service's pods' event-loop lag (mean and worst pod),
on a log scale, beside the probes' timeout when it has probes. Left out while every loop kept up."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: The panel is left out when no pod's loop was ever this far behind (ms).
LAG_QUIET_MS = 10.0


def loop_quiet(p: Any) -> bool:
    """Every loop kept up: the worst sampled lag stayed under LAG_QUIET_MS."""
    return p.peak("event_loop_lag_max_ms") < LAG_QUIET_MS


def draw_event_loop(p: Any, ax: "Axes") -> None:
    """`p` is the dashboard's panels (its `lines`, `col`, `services`, `x`, `result`)."""
    p.lines(ax, [("event_loop_lag_ms", "event-loop lag, mean"), ("event_loop_lag_max_ms", "worst pod")],
            skip_zero=True)
    timeouts = {probe.timeout for s in p.result.scenario.services.values()
                for probe in (s.pod.liveness, s.pod.readiness) if probe is not None}
    for t in sorted(timeouts):
        ax.axhline(1000 * t, color="darkred", lw=0.8, ls=":", label=f"probe timeout {t:g} s")
    ax.set_yscale("log")
    top = max(p.peak("event_loop_lag_max_ms"), LAG_QUIET_MS)
    ax.set_ylim(0.1, 2 * top if np.isfinite(top) else 1000)
    ax.set_ylabel("event-loop lag (ms)")
