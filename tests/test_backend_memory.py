"""A backend's memory that grows with the statements it runs (`database.backend_growth_mb`, up to
`backend_max_mb`) until its connection ends: tiny deterministic cases, exact to the MB, then the
shipped story (backend_bloat.toml) and its rotation."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from builders import TEXTBOOK, scenario
from shipped import run as run_shipped

from spiralsim.analysis.check import check
from spiralsim.model.memory import ServerMemory
from spiralsim.model.world import World
from spiralsim.scenario import DatabaseConfig, ScenarioError

BLOAT = Path(__file__).resolve().parent.parent / "scenarios" / "backend_bloat.toml"

#: TEXTBOOK's 40 requests (one 4 ms statement each, at 0.125 k s, one warm connection) on a server
#: with room to spare: a backend of 2 MB that grows 0.25 MB a statement up to 7 MB (20 statements).
GROWING = ("database.memory_mb=10000", "database.backend_mb=2", "database.backend_growth_mb=0.25",
           "database.backend_max_mb=7")


def run(*sets: str, duration: str = "20s") -> World:
    world = World(scenario(TEXTBOOK, *GROWING, *sets, duration=duration))
    world.run()
    return world


def live_connection(world: World):
    (conn,) = world.services["api"].pods[0].pool.conns.values()
    return conn


# ---------------------------------------------------------------- the memory itself


def test_a_backend_grows_per_statement_up_to_its_cap_and_its_end_frees_it():
    m = ServerMemory(DatabaseConfig(memory_mb=1000, backend_mb=1.5, backend_growth_mb=1.0, backend_max_mb=4.5))
    for _ in range(5):
        m.grow(1)  # 1, 2, 3, then the cap: 3 MB above backend_mb
    m.grow(2)
    assert m.grown == {1: 3.0, 2: 1.0} and m.extra == 4.0
    assert m.used(2, 0) == 128 + 2 * 1.5 + 4.0  # shared buffers, two backends, what they grew
    m.ended(SimpleNamespace(id=1))
    assert m.grown == {2: 1.0} and m.extra == 1.0
    m.ended(SimpleNamespace(id=3))  # a backend that never ran a statement grew nothing
    m.ended(SimpleNamespace(id=2))
    assert m.grown == {} and m.extra == 0.0


def test_a_backend_after_n_statements():
    # 8 requests by 1.05 s (0.125 ... 1.0 s): 8 statements on the one connection, 0.25 MB each
    world = run(duration="1.05s")
    conn, m = live_connection(world), world.database.memory
    assert conn.uses == 8 and m.grown == {conn.id: 2.0} and m.extra == 2.0
    # all 40: the cap, 5 MB above backend_mb, after 20
    m = run().database.memory
    assert list(m.grown.values()) == [5.0] and m.extra == 5.0


def test_rotation_resets_the_backend():
    # max_uses 3: the 40th statement is the first of the 14th connection; the 13 before freed theirs
    world = run("services.api.pool.max_uses=3")
    conn, m = live_connection(world), world.database.memory
    assert conn.uses == 1 and m.grown == {conn.id: 0.25} and m.extra == 0.25
    # max_lifetime 2 s: the connection that serves the last requests is a new backend; it holds
    # what its own statements grew, nothing of its predecessors'
    world = run("services.api.pool.max_lifetime=2s", duration="4.9s")
    conn, m = live_connection(world), world.database.memory
    assert world.recorder.finalize(4.9).services["api"].cols["connects"].sum() >= 2
    assert 0 < conn.uses < 20 and m.grown == {conn.id: 0.25 * conn.uses} and m.extra == 0.25 * conn.uses


def test_a_closed_connection_frees_what_its_backend_grew():
    # idle_timeout 1 s: the connection closes a second after the last request (5 s); the server's
    # memory is back to shared buffers + backend_mb x the backends left (none)
    world = run("services.api.pool.idle_timeout=1s")
    m = world.database.memory
    assert world.database.held == 0 and m.grown == {} and m.extra == 0.0
    (peak,) = [e for e in world.recorder.events if e.kind == "db_memory_peak"]
    assert peak.data["peak_mb"] == 128 + 2 + 5.0 + 4 and peak.data["end_mb"] == 128.0  # no backend left
    assert "of 7.0 MB each on average" in peak.detail


def test_the_swap_begins_when_the_grown_backends_pass_the_ram():
    # 135 MB of RAM: 128 shared + 2 backend + 4 work_mem = 134, and 0.25 MB a statement: the 5th
    # statement (0.625 s) starts with 135.25 MB held and runs 10x slower (40 ms)
    world = run("database.memory_mb=135")
    (swap,) = [e for e in world.recorder.events if e.kind == "db_swap"]
    assert swap.time == pytest.approx(0.625)
    assert swap.detail.startswith("the database holds 135 MB (1 backends of 3.2 MB each on average, 1 statements")
    latency = world.recorder.finalize(20.0).services["api"].cols["latency_sum"]
    assert latency[0] == pytest.approx(4 * 0.004 + 3 * 0.040)  # and every one after it: nothing shrinks
    assert latency[1] == pytest.approx(8 * 0.040)


def test_without_growth_nothing_is_tracked():
    world = run("database.backend_growth_mb=0")
    m = world.database.memory
    assert world.database.sessions.on_end is None and m.grown == {} and m.extra == 0.0
    (peak,) = [e for e in world.recorder.events if e.kind == "db_memory_peak"]
    assert "each on average" not in peak.detail
    assert not [e for e in run("database.memory_mb=0").recorder.events if e.kind == "db_memory_peak"]


# ---------------------------------------------------------------- bad input, check


def test_negative_growth_is_refused_in_one_line():
    with pytest.raises(ScenarioError) as err:
        scenario(TEXTBOOK, "database.backend_growth_mb=-1")
    (line,) = str(err.value).strip().splitlines()
    assert "database.backend_growth_mb" in line and ">= 0" in line


def test_a_cap_below_the_start_is_refused_when_backends_grow():
    with pytest.raises(ScenarioError, match="backend_max_mb"):
        scenario(TEXTBOOK, "database.backend_mb=10", "database.backend_max_mb=5", "database.backend_growth_mb=1")
    scenario(TEXTBOOK, "database.backend_mb=10", "database.backend_max_mb=5")  # no growth: no cap to respect


def test_check_counts_backends_at_their_cap_and_names_the_pools_that_never_rotate():
    sets = ("database.memory_mb=2048", "database.backend_growth_mb=0.01", "database.backend_max_mb=50")
    (finding,) = [f for f in check(scenario(TEXTBOOK, *sets)) if f.rule == "memory"]
    assert finding.status == "fail" and finding.figures["worst_case_mb"] == pytest.approx(128 + 100 * (50 + 4))
    assert finding.figures["unrotated"] == ["api"] and "max_lifetime" in finding.line
    rotated = scenario(TEXTBOOK, *sets, "services.api.pool.max_lifetime=1h")
    assert [f.status for f in check(rotated) if f.rule == "memory"] == ["warn"]
    (plain,) = [f for f in check(scenario(TEXTBOOK, "database.memory_mb=2048")) if f.rule == "memory"]
    assert plain.status == "ok" and plain.figures["worst_case_mb"] == pytest.approx(128 + 100 * (1.7 + 4))


# ---------------------------------------------------------------- the story


def test_rotating_connections_keeps_the_bloated_server_out_of_swap():
    bloated, rotated = run_shipped(BLOAT), run_shipped(BLOAT, "services.api.pool.max_lifetime=120s")

    def peak(result) -> float:
        (e,) = [e for e in result.events if e.kind == "db_memory_peak"]
        return e.data["peak_mb"]

    assert any(e.kind == "db_swap" for e in bloated.events) and peak(bloated) > 2048
    assert not any(e.kind == "db_swap" for e in rotated.events) and peak(rotated) < peak(bloated) / 2
    failed = [r.summary["services"]["api"]["failures_total"] for r in (bloated, rotated)]
    assert failed[0] > 10_000 and failed[1] == 0
