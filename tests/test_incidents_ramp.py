"""A slow_queries incident whose factor ramps: linear from 1 at its start to `factor` at its end."""
from __future__ import annotations

import pytest
from builders import TEXTBOOK, scenario

from spiralsim.model.world import World
from spiralsim.scenario import ScenarioError
from spiralsim.scenario.triggers import Incident, incidents


def test_the_factor_ramps_from_one_to_factor_over_the_window():
    inc = Incident("slow_queries", 10.0, 20.0, 5.0, ramp=True)
    assert [inc.factor_at(t) for t in (9.9, 10.0, 15.0, 19.0, 20.0)] == [1.0, 1.0, 3.0, 4.6, 1.0]
    assert Incident("slow_queries", 10.0, 20.0, 5.0).factor_at(15.0) == 5.0


def test_a_statement_is_scaled_by_the_factor_when_it_starts():
    # 100 ms statements, a request every 0.125 s until 5 s, 40 warm connections (no wait, no connect):
    # ramping to x3 over 0-4 s, a statement starting at t < 4 s takes 0.1 x (1 + 2 t / 4) s.
    warm = ("services.api.endpoints.q.statement_wait=100ms", "services.api.pool.max=40",
            "services.api.pod.warm_connections=40")
    plain = scenario(TEXTBOOK, *warm)
    ramped = scenario(TEXTBOOK, *warm,
                      incidents=[{"kind": "slow_queries", "start": "0s", "end": "4s", "factor": 3, "ramp": True}])
    assert incidents(ramped)[0].ramp
    lat = {}
    for name, s in (("plain", plain), ("ramped", ramped)):
        c = World(s).run().services["api"].cols
        lat[name] = c["latency_sum"].sum()
    extra = sum(0.1 * 2 * (0.125 * k) / 4 for k in range(1, 40) if 0.125 * k < 4)
    assert lat["ramped"] - lat["plain"] == pytest.approx(extra)


def test_only_slow_queries_ramp():
    with pytest.raises(ScenarioError, match="only slow_queries ramps its factor"):
        scenario(TEXTBOOK, incidents=[{"kind": "db_restart", "start": "1s", "end": "2s", "ramp": True}])
