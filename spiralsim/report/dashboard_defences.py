"""The dashboard's defences panel: what the client's and the pods' defences refused, per second,
the circuit breaker's state as bands, and on the right the pods' adaptive limit. Shown only
when a service has one of them switched on."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..scenario import Scenario

if TYPE_CHECKING:
    from matplotlib.axes import Axes

#: (column, label) of the attempts a defence refused at once, and the retries a budget denied.
REFUSALS = (("attempts_circuit_open", "refused: breaker open"), ("attempts_throttled", "refused: throttled"),
            ("attempts_shed", "refused: shed (max_inflight)"),
            ("attempts_concurrency_limited", "refused: adaptive limit"), ("retries_denied", "retries denied (budget)"))


def has_defences(scenario: Scenario) -> bool:
    """A service with a retry budget, a breaker, throttling, shedding or an adaptive limit."""
    return any(s.client.retry_budget > 0 or s.client.circuit_breaker or s.client.throttle_k > 0
               or s.pod.max_inflight > 0 or s.pod.adaptive_concurrency for s in scenario.services.values())


def draw_defences(p: Any, ax: "Axes") -> list["Axes"]:
    """`p` is the dashboard's panels (its `lines`, `col`, `services`, `style`, `label`, `x`)."""
    p.lines(ax, list(REFUSALS), rate=True, skip_zero=True)
    ax.set_ylabel("refused at once\n(per second)")
    ax.set_ylim(bottom=0)
    right = None
    for si, name in enumerate(p.services):
        svc = p.result.scenario.services[name]
        if svc.client.circuit_breaker:  # the breaker's state as bands: open darker, half-open lighter
            state = np.asarray(p.col("breaker_state", name), dtype=float)
            for level, alpha, word in ((2, 0.25, "open"), (1, 0.12, "half-open")):
                ax.fill_between(p.x, 0, 1, where=state == level, step="post", color="tab:olive", alpha=alpha,
                                lw=0, transform=ax.get_xaxis_transform(), label=p.label(name, f"breaker {word}"))
        if svc.pod.adaptive_concurrency:
            right = right or ax.twinx()
            limit = np.asarray(p.col("concurrency_limit", name), dtype=float)
            right.plot(p.x, limit, lw=1.0, color="tab:gray", ls="--" if si else "-",
                       label=p.label(name, "adaptive limit per pod (right)"))
    if right is None:
        return []
    right.set_ylim(bottom=0)
    right.set_ylabel("in flight", fontsize=8)
    return [right]
