"""`spiralsim sweep`: a grid of settings x seeds run in parallel, paired with and without the
trigger, resumable, and the metastability map it draws.

Most sweeps here run the textbook M/M/1 pool (`spiralsim.scenario.textbook`) for a few
hundred simulated seconds at about 10 requests a second: a run takes a few
hundredths of a second, so the process pools' start-up dominates.
"""
from __future__ import annotations

import argparse
import io
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from spiralsim.experiments.sweep import (
    RESULTS,
    SweepError,
    add_sweep_command,
    parse_grid,
    plan,
    run_sweep,
    split_values,
    sweep,
)
from spiralsim.experiments.sweep_map import CELLS, MAP, cells, draw_map, pair_verdict, run_verdict
from spiralsim.experiments.sweep_run import ROW_FIELDS, build_scenario, run_one
from spiralsim.scenario import Scenario, ScenarioError, load_scenario, scenario_from_toml
from spiralsim.scenario.textbook import queue_toml
from spiralsim.simulate import simulate

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"
MU = 10.0  # statements per second on the one connection
RATE = "services.api.traffic.rate"
ATTEMPTS = "services.api.client.max_attempts"
#: Thirty slow seconds: statements 10x slower (the pool serves 1/s) from 60 s to 90 s.
SLOW = '\n[[incidents]]\nkind = "slow_queries"\nstart = "60s"\nend = "90s"\nfactor = 10\n'


def textbook_text(lam: float = 5.0, duration: float = 300.0, trigger: bool = True) -> str:
    """M/M/1 (one connection, mu = 10/s, the pool waits forever), a client that gives up
    after 5 s, p99 threshold 5 s; with `trigger`, statements 10x slower for 30 s at 1:00."""
    return (queue_toml(c=1, lam=lam, mu=MU, duration=duration, seed=1)
            + '\n[analysis]\nlatency_p99_threshold = "5s"\n' + (SLOW if trigger else "")
            ).replace("[services.api.client]\ntimeout = 0\n", '[services.api.client]\ntimeout = "5s"\n')


def textbook(**kw) -> Scenario:
    return scenario_from_toml(textbook_text(**kw))


def without_time(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns="wall_s").reset_index(drop=True)


class CountingPool(ProcessPoolExecutor):
    """A process pool that counts the runs submitted to it (counted in this process)."""

    def __init__(self, workers: int = 2):
        super().__init__(max_workers=workers)
        self.submitted = 0

    def submit(self, fn, /, *args, **kwargs):
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


# ---------------------------------------------------------------- one run = one simulate()


def test_a_row_is_a_single_simulate_of_the_same_settings_and_seed():
    """retry_storm shortened to 4 minutes (its trigger at 2:00-2:20), 2 seeds, paired."""
    scenario = load_scenario(SCENARIOS / "retry_storm.toml", overrides=["duration=4m"])
    grid = {ATTEMPTS: [3]}
    rows = sweep(scenario, grid, seeds=2, workers=2)
    assert len(rows) == 2 * 2 and list(rows.columns) == [ATTEMPTS, *ROW_FIELDS]
    for row in rows.to_dict("records"):
        sets = ["duration=4m", f"{ATTEMPTS}={row[ATTEMPTS]}"] + ([] if row["trigger"] else ["incidents=[]"])
        alone = simulate(load_scenario(SCENARIOS / "retry_storm.toml", overrides=sets, seed=row["seed"])).summary
        api = alone["services"]["api"]
        assert row["outcome"] == alone["outcome"]
        assert row["degraded_s"] == alone["degraded_buckets"] * 1.0
        assert row["bad"] == api["impact"]["failed"] + api["impact"]["slow"]
        assert row["requests"] == api["requests"] and row["amplification"] == api["amplification"]
    assert set(rows["seed"]) == {1, 2}
    by = rows.set_index([ATTEMPTS, "seed", "trigger"])["outcome"]
    assert by[(3, 1, True)] == "metastable" and by[(3, 1, False)] == "stable"


def test_without_the_trigger_drops_incidents_and_phases_above_base_only():
    text = textbook_text(lam=5.0, trigger=True) + (
        '\n[[services.api.traffic.phases]]\nstart = "100s"\nend = "110s"\nrate = 20\n'
        '\n[[services.api.traffic.phases]]\nstart = "200s"\nend = "210s"\nrate = 1\n')
    bare = build_scenario(text, [f"{RATE}=4"], seed=7, trigger=False)
    assert bare.incidents == [] and bare.seed == 7 and bare.services["api"].traffic.rate == 4
    assert [p.rate for p in bare.services["api"].traffic.phases] == [1]
    # the base rate decides, after the overrides: at 25/s the 20/s phase is no trigger
    assert [p.rate for p in build_scenario(text, [f"{RATE}=25"], 1, False).services["api"].traffic.phases] == [20, 1]


def test_the_worker_returns_a_plain_row():
    task = plan(textbook(duration=120.0), {RATE: [2.0]}, seeds=1, pair=True)[0]
    row = run_one(task)
    assert set(row) == {RATE, *ROW_FIELDS}
    assert all(isinstance(v, (str, int, float, bool, type(None))) for v in row.values())


# ---------------------------------------------------------------- resume, failures, bad input


def test_resuming_reruns_only_the_runs_missing_from_results_csv(tmp_path):
    scenario, grid = textbook(duration=150.0), {RATE: [2.0, 6.0], ATTEMPTS: [1, 3]}
    with CountingPool() as pool:
        first = sweep(scenario, grid, seeds=2, executor=pool, out=tmp_path)
    assert pool.submitted == len(first) == 2 * 2 * 2 * 2
    lines = (tmp_path / RESULTS).read_text().splitlines()
    kept = lines[:3] + lines[6:-1] + [lines[-1][: len(lines[-1]) // 2]]  # drop three runs, cut the last short
    (tmp_path / RESULTS).write_text("\n".join(kept))
    with CountingPool() as pool:
        second = sweep(scenario, grid, seeds=2, executor=pool, out=tmp_path)
    assert pool.submitted == 4
    pd.testing.assert_frame_equal(without_time(second), without_time(first))
    with CountingPool() as pool:
        sweep(scenario, grid, seeds=2, executor=pool, out=tmp_path)
    assert pool.submitted == 0
    assert len(pd.read_csv(tmp_path / RESULTS)) == 16 and (tmp_path / CELLS).exists() and (tmp_path / MAP).exists()


def test_results_of_another_grid_are_refused(tmp_path):
    sweep(textbook(duration=60.0), {RATE: [2.0]}, workers=1, out=tmp_path)
    with pytest.raises(SweepError, match="another sweep"):
        sweep(textbook(duration=60.0), {ATTEMPTS: [1]}, workers=1, out=tmp_path)


def test_a_failing_run_is_a_row_and_the_sweep_goes_on(tmp_path):
    log = io.StringIO()
    rows = sweep(textbook(lam=2.0, duration=200.0), {"services.api.pool.max": [1, 0, 2]}, workers=2, out=tmp_path,
                 log=log)
    assert len(rows) == 6
    bad = rows[rows["services.api.pool.max"] == 0]
    assert list(bad["outcome"]) == ["error", "error"]
    assert all("services.api.pool.max" in reason for reason in bad["outcome_reason"])
    assert set(rows[rows["services.api.pool.max"] != 0]["outcome"]) <= {"stable", "recovered"}
    assert len(log.getvalue().splitlines()) == 2 and "run failed" in log.getvalue()
    table = pd.read_csv(tmp_path / CELLS)
    assert list(table["verdict"]) == ["healthy", "error", "healthy"]
    with CountingPool() as pool:  # resumed, the failed runs run again (a lost worker would not fail twice)
        again = sweep(textbook(lam=2.0, duration=200.0), {"services.api.pool.max": [1, 0, 2]}, executor=pool,
                      out=tmp_path, log=io.StringIO())
    assert pool.submitted == 2 and len(again) == 6


def test_an_unknown_key_is_refused_before_any_run():
    with pytest.raises(ScenarioError, match="unknown key"):
        sweep(textbook(), {"services.api.pool.maxx": [1, 2]}, executor=_NoRuns())


class _NoRuns(ProcessPoolExecutor):
    def submit(self, *args, **kwargs):  # pragma: no cover - the point is that it is never called
        raise AssertionError("a run was submitted")


def test_grid_values_parse_as_set_values():
    assert split_values('1,2s,[3, 4],"a,b",{x = 1, y = 2}') == ["1", "2s", "[3, 4]", '"a,b"', "{x = 1, y = 2}"]
    assert parse_grid(["a.b=1,2.5,true,2s,\"5\""]) == {"a.b": [1, 2.5, True, "2s", "5"]}
    for bad in (["a.b"], ["=1,2"], ["a.b=1,,2"], ["a.b="], ["a=1", "a=2"]):
        with pytest.raises(SweepError):
            parse_grid(bad)


def test_verdict_words():
    assert pair_verdict("stable", "recovered") == "healthy"
    assert pair_verdict("stable", "metastable") == "metastable"
    assert pair_verdict("recovered", "stuck") == "stuck"
    assert pair_verdict("overloaded", "metastable") == "overloaded"
    assert pair_verdict("stuck", "stuck") == "stuck"
    assert pair_verdict("stable", "inconclusive") == "inconclusive"
    assert pair_verdict("inconclusive", "stable") == "inconclusive"
    assert pair_verdict("stable", "error") == "error"
    assert [run_verdict(o) for o in ("stable", "recovered", "metastable", "overloaded")] == [
        "healthy", "healthy", "metastable", "overloaded"]


# ---------------------------------------------------------------- the command


def cli(*argv: str) -> tuple[int, list[str], list[str]]:
    parser = argparse.ArgumentParser(prog="spiralsim")
    add_sweep_command(parser.add_subparsers(dest="command"))
    out, err = io.StringIO(), io.StringIO()
    status = run_sweep(parser.parse_args(["sweep", *argv]), out, err)
    return status, out.getvalue().splitlines(), err.getvalue().splitlines()


def test_the_command_writes_the_three_files_and_prints_the_cells(tmp_path):
    path = tmp_path / "mm1.toml"
    path.write_text(textbook_text(duration=200.0))
    status, out, err = cli(str(path), "--grid", f"{RATE}=2,6", "--grid", f"{ATTEMPTS}=1,3",
                           "--set", "duration=200s", "--workers", "2", "--out", str(tmp_path / "sw"))
    assert status == 0 and err == []
    assert out[-1] == str(tmp_path / "sw") and len(out) == 5
    assert out[3] == f"{RATE}=6  {ATTEMPTS}=3: metastable (metastable 1)"
    assert {p.name for p in (tmp_path / "sw").iterdir()} == {RESULTS, CELLS, MAP}


def test_the_command_refuses_bad_input_with_one_line_and_status_2(tmp_path):
    path = tmp_path / "mm1.toml"
    path.write_text(textbook_text())
    plain = tmp_path / "plain.toml"
    plain.write_text(textbook_text(trigger=False))
    for argv, says in [((str(path), "--grid", "services.api.pool.max"), "expected KEY=V1,V2"),
                       ((str(path), "--grid", "services.api.pool.maxx=1,2"), "unknown key"),
                       ((str(plain), "--grid", f"{RATE}=1", "--paired-trigger"), "need a trigger"),
                       ((str(tmp_path / "none.toml"), "--grid", f"{RATE}=1"), "no such file")]:
        status, out, err = cli(*argv, "--out", str(tmp_path / "x"))
        assert status == 2 and out == [] and len(err) == 1 and says in err[0], (argv, err)
    assert not (tmp_path / "x").exists()


def test_pairing_follows_the_trigger(tmp_path):
    """Paired by default with a trigger; --no-paired-trigger runs it as is; no trigger, no pair."""
    grid = {RATE: [2.0]}
    assert list(sweep(textbook(duration=60.0), grid, seeds=2, workers=1)["trigger"]) == [True, False, True, False]
    assert list(sweep(textbook(duration=60.0), grid, workers=1, paired_trigger=False)["trigger"]) == [True]
    assert list(sweep(textbook(duration=60.0, trigger=False), grid, workers=1)["trigger"]) == [False]


def test_a_map_has_one_panel_per_value_of_a_third_key(tmp_path):
    rows = [{"a": a, "b": b, "c": c, "cell": f"{a}{b}{c}", "seed": 1, "trigger": True,
             "outcome": ["stable", "metastable", "overloaded", "stuck"][(a + b + c) % 4], "degraded_s": 1.0,
             "recovery_s": None, "budget_share": 0.1} for c in (0, 1) for b in (1, 2, 3) for a in (1, 2)]
    table = cells(pd.DataFrame(rows))
    assert list(table.columns[:5]) == ["a", "b", "c", "verdict", "seeds"] and len(table) == 12
    fig = draw_map(table, ["a", "b", "c"], tmp_path / "map.png", "three keys")
    assert len(fig.axes) == 2 and (tmp_path / "map.png").stat().st_size > 0


# ---------------------------------------------------------------- Dask


def test_dask_without_distributed_is_one_line_and_status_2(tmp_path, monkeypatch):
    path = tmp_path / "mm1.toml"
    path.write_text(textbook_text())
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed raises ImportError
    status, out, err = cli(str(path), "--grid", f"{RATE}=1", "--dask", "tcp://127.0.0.1:8786", "--out", str(tmp_path))
    assert status == 2 and out == [] and err == [
        "spiralsim: error: --dask needs the dask distributed package: pip install 'spiralsim[dask]'"]


def test_dask_gives_the_same_table_as_local_processes(tmp_path):
    distributed = pytest.importorskip("distributed")
    path = tmp_path / "mm1.toml"
    path.write_text(textbook_text(duration=150.0))
    grid = ["--grid", f"{RATE}=2,6", "--grid", f"{ATTEMPTS}=1,3", "--seeds", "2", "--quiet"]
    assert cli(str(path), *grid, "--workers", "2", "--out", str(tmp_path / "local"))[0] == 0
    with distributed.LocalCluster(n_workers=1, processes=False, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        status, out, err = cli(str(path), *grid, "--dask", cluster.scheduler_address, "--out", str(tmp_path / "dask"))
        assert status == 0 and err == [] and out == [str(tmp_path / "dask")]
        with distributed.Client(cluster) as client:  # the API with a Dask client's executor
            sweep(textbook(duration=150.0), {RATE: [2, 6], ATTEMPTS: [1, 3]}, seeds=2,
                  executor=client.get_executor(), out=tmp_path / "api")
    local = pd.read_csv(tmp_path / "local" / RESULTS).sort_values(["cell", "seed", "trigger"])
    for other in ("dask", "api"):
        theirs = pd.read_csv(tmp_path / other / RESULTS).sort_values(["cell", "seed", "trigger"])
        pd.testing.assert_frame_equal(without_time(theirs), without_time(local))
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / other / CELLS), pd.read_csv(tmp_path / "local" / CELLS))


# ---------------------------------------------------------------- the textbook map


def test_textbook_map_metastable_band_widens_with_retries(tmp_path):
    """M/M/1 at mu = 10/s (one connection, exponential statements, the pool waits forever),
    Poisson arrivals at lam = 1, 2, 4, 6, 8/s (load 0.1 to 0.8, all below capacity), a
    client timeout of 5 s (50 mean statements; p99 threshold 5 s) and R = 0..3 immediate
    retries (max_attempts = R + 1); trigger: statements 10x slower for 30 s at 1:00, which
    queues far more than 5 s of work at every load above 0.1. 300 simulated seconds, settle
    60 s, 2 seeds, paired: 80 runs, a few seconds on 2 cores.

    Theory: once every attempt waits past the timeout, the pool (which never drops a
    waiter) is offered lam (R + 1) attempts a second against mu: the backlog drains iff
    rho (R + 1) < 1. So R = 0 recovers at every load below capacity, and the metastable
    band is rho >= 1 / (R + 1): 0.5, 1/3, 1/4 for R = 1, 2, 3. We check the cells clear of
    that edge (rho (R + 1) <= 0.8 healthy, >= 1.2 metastable), which the grid's loads all are.
    (Loads of 0.9 are left out: there even R = 0 drains at 1/s and the run ends inside the
    backlog, which the outcome rules call metastable.)"""
    rates, retries = [1.0, 2.0, 4.0, 6.0, 8.0], [0, 1, 2, 3]
    scenario = textbook(duration=300.0)
    rows = sweep(scenario, {RATE: rates, ATTEMPTS: [r + 1 for r in retries]}, seeds=2, workers=2, out=tmp_path)
    assert len(rows) == 80 and set(rows["outcome"]) <= {"stable", "recovered", "metastable"}
    table = pd.read_csv(tmp_path / CELLS)
    band = {r: {row[RATE] for row in table.to_dict("records") if row[ATTEMPTS] == r + 1
                and row["verdict"] == "metastable"} for r in retries}
    assert band[0] == set() and band[2] and band[1] <= band[2] <= band[3]
    for row in table.to_dict("records"):
        load = row[RATE] / MU * row[ATTEMPTS]
        if load <= 0.8:
            assert row["verdict"] == "healthy" and row["healthy"] == 2, row
        if load >= 1.2:
            assert row["verdict"] == "metastable" and row["metastable"] == 2, row
    assert band == {0: set(), 1: {6.0, 8.0}, 2: {4.0, 6.0, 8.0}, 3: {4.0, 6.0, 8.0}}
    assert (tmp_path / MAP).stat().st_size > 0

