"""`compare`: a baseline and named variants, with common random numbers.

One short retry storm (`scenarios/retry_storm.toml` cut to 50 s, its slow
statements at 10-20 s, `settle` 15 s: the baseline stays down, metastable;
waiters that give up after 1 s let it recover) is compared once per module and
shared by the tests that only read the comparison.
"""
from __future__ import annotations

import argparse
import csv
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spiralsim.analysis import service_column
from spiralsim.experiments.compare import (
    BASELINE,
    Comparison,
    add_compare_command,
    compare,
    comparison_table,
    parse_variant,
    run_compare,
    variant_scenarios,
)
from spiralsim.experiments.compare_report import comparison_csv
from spiralsim.experiments.overlay import BASELINE_COLOUR, overlay
from spiralsim.report import FILES
from spiralsim.scenario import ScenarioError, load_scenario, scenario_from_toml, scenario_to_toml
from spiralsim.simulate import simulate

ROOT = Path(__file__).resolve().parent.parent
STORM = ROOT / "scenarios" / "retry_storm.toml"
SHORT = ('duration="50s"', 'incidents.0.start="10s"', 'incidents.0.end="20s"', 'analysis.settle="15s"')
TIMEOUT = "services.api.pool.acquire_timeout=1s"
BIGGER_POOL = "services.api.pool.max=12"


@pytest.fixture(scope="module")
def storm() -> Comparison:
    scenario = load_scenario(STORM, overrides=SHORT)
    return compare(scenario, {"same": [], "bigger_pool": [BIGGER_POOL], "timeout": [TIMEOUT]})


def _figures(row: pd.Series) -> dict:
    """A table row without its name and overrides, NaN as None (NaN != NaN)."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in row.items() if k not in ("variant", "overrides")}


# ---------------------------------------------------------------- common random numbers


def test_a_variant_that_changes_nothing_gives_the_baseline_exactly(storm: Comparison) -> None:
    assert storm.results["same"].summary == storm.results[BASELINE].summary
    for key, column in storm.results[BASELINE].timeseries.items():
        np.testing.assert_array_equal(storm.results["same"].timeseries[key], column, err_msg=key)  # NaN == NaN
    rows = storm.table.set_index("variant", drop=False)
    assert _figures(rows.loc["same"]) == _figures(rows.loc[BASELINE])


def test_a_variant_of_the_pool_sees_the_baseline_s_arrivals(storm: Comparison) -> None:
    base, pool = storm.results[BASELINE], storm.results["bigger_pool"]
    assert pool.scenario.services["api"].pool.max == 12 and base.scenario.services["api"].pool.max == 10
    assert np.array_equal(service_column(pool.timeseries, "arrivals", "api"),
                          service_column(base.timeseries, "arrivals", "api"))
    assert pool.summary["services"]["api"]["requests"] == base.summary["services"]["api"]["requests"]
    assert pool.summary != base.summary  # the pool did change something


# ---------------------------------------------------------------- the table


def test_the_table_has_one_row_per_run_in_order(storm: Comparison) -> None:
    t = storm.table
    assert list(t["variant"]) == [BASELINE, "same", "bigger_pool", "timeout"] == list(storm.results)
    assert list(t["overrides"]) == ["", "", BIGGER_POOL, TIMEOUT]
    assert list(t.columns[:6]) == ["variant", "overrides", "outcome", "outcome_reason", "recovery_s", "settled_s"]
    for figure in ("requests", "failed", "slow", "failed_share", "budget_share", "impact_start_s", "impact_end_s",
                   "degraded_s", "detected_s", "p99_during_ms", "p99_after_ms", "amplification", "pods_max",
                   "crashes", "peak_db_connections"):
        assert f"api.{figure}" in t.columns
    assert list(t.columns[-2:]) == ["database.peak_connections", "database.refused_connects"]
    assert t["api.requests"].dtype == np.int64 and t["api.budget_share"].dtype == np.float64
    assert list(t["outcome"]) == ["metastable", "metastable", "metastable", "recovered"]
    assert t["outcome_reason"].iloc[-1] is None and math.isnan(t["recovery_s"].iloc[0])


def test_the_table_reads_the_summary(storm: Comparison) -> None:
    s = storm.results["timeout"].summary
    api = s["services"]["api"]
    row = storm.table.iloc[-1]
    assert row["recovery_s"] == s["recovery_s"] and row["api.failed"] == api["impact"]["failed"]
    assert row["api.budget_share"] == api["impact"]["budget_share"]
    assert row["api.p99_after_ms"] == api["p99_ms"]["after"]
    assert row["api.failed_share"] == pytest.approx(api["failures_total"] / api["requests"], abs=1e-6)
    assert row["database.peak_connections"] == s["database"]["peak_connections"]


def test_a_variant_s_row_equals_a_plain_run_of_its_overrides(storm: Comparison) -> None:
    plain = simulate(load_scenario(STORM, overrides=SHORT + (TIMEOUT,)))
    assert plain.summary == storm.results["timeout"].summary
    alone = comparison_table({"timeout": plain}, {"timeout": [TIMEOUT]})
    assert _figures(alone.iloc[0]) == _figures(storm.table.iloc[-1])


def test_the_csv_writes_integers_plainly_and_null_empty(storm: Comparison) -> None:
    lines = list(csv.reader(io.StringIO(comparison_csv(storm.table))))
    assert len(lines) == 1 + len(storm.results)
    header, first = lines[0], lines[1]
    assert header[0] == "variant" and first[0] == BASELINE
    assert first[header.index("recovery_s")] == "" and "." not in first[header.index("api.requests")]


# ---------------------------------------------------------------- building variants


SMALL = """
duration = "8s"
[services.api.traffic]
rate = 50
[services.api.pool]
max = 2
[services.api.endpoints.get]
[[incidents]]
kind = "slow_queries"
factor = 20
start = "2s"
end = "5s"
"""
FILE_VARIANTS = """
[[variants]]
name = "wider"
set = ["services.api.pool.max=6"]

[[variants]]
name = "control"
set = []
"""


def test_variants_from_the_file_are_used_and_round_trip() -> None:
    scenario = scenario_from_toml(SMALL + FILE_VARIANTS)
    assert [(v.name, v.set) for v in scenario.variants] == [("wider", ["services.api.pool.max=6"]),
                                                             ("control", [])]
    assert scenario_from_toml(scenario_to_toml(scenario)) == scenario
    assert "[[variants]]" in scenario_to_toml(scenario)
    result = compare(scenario)
    assert list(result.results) == [BASELINE, "wider", "control"]
    assert result.results["wider"].scenario.services["api"].pool.max == 6
    assert result.results["wider"].scenario.variants == []  # a variant's own scenario has none
    # the simulation ignores them: the same scenario without variants runs the same
    assert simulate(scenario_from_toml(SMALL)).summary == result.results[BASELINE].summary
    assert result.results["control"].summary == result.results[BASELINE].summary


def test_explicit_variants_replace_the_file_s() -> None:
    scenario = scenario_from_toml(SMALL + FILE_VARIANTS)
    assert list(variant_scenarios(scenario, [("only", ["services.api.pool.max=3"])])) == [BASELINE, "only"]


def test_a_bad_override_is_a_scenario_error_naming_its_variant() -> None:
    scenario = scenario_from_toml(SMALL)
    with pytest.raises(ScenarioError) as caught:
        compare(scenario, {"good": ["services.api.pool.max=3"], "typo": ["services.api.pool.maxx=3"],
                           "negative": ["services.api.pool.max=-1", "nonsense"]})
    lines = caught.value.errors
    assert lines[0].startswith("variant typo: services.api.pool.maxx: unknown key; did you mean max?")
    assert len(lines) == 2 and lines[1].startswith("variant negative: --set 'nonsense': expected PATH=VALUE")


def test_variant_names_are_plain_distinct_and_not_baseline() -> None:
    scenario = scenario_from_toml(SMALL)
    with pytest.raises(ScenarioError) as caught:
        variant_scenarios(scenario, [("baseline", []), ("a b", []), ("ok", []), ("ok", [])])
    assert [line.split(":")[0] for line in caught.value.errors] == [
        "variant 'baseline'", "variant 'a b'", "variant ok"]
    with pytest.raises(ScenarioError) as caught:
        scenario_from_toml(SMALL + FILE_VARIANTS + '[[variants]]\nname = "wider"\nset = []\n')
    assert caught.value.errors == ["variants: each variant needs its own name; given more than once: wider"]


def test_parse_variant_splits_only_between_overrides() -> None:
    assert parse_variant("capped:services.api.autoscaler.max_replicas=4") == (
        "capped", ("services.api.autoscaler.max_replicas=4",))
    assert parse_variant('x:a.b=[{at="2m", replicas=5}], c="1,2" ,d=3') == (
        "x", ('a.b=[{at="2m", replicas=5}]', 'c="1,2"', "d=3"))
    for bad in ("no_colon", ":a=1", "x:", "x:a=1,b", "two words:a=1", "baseline:a=1"):
        with pytest.raises(ValueError):
            parse_variant(bad)


# ---------------------------------------------------------------- the overlay and the report


def test_the_overlay_has_one_line_per_run_in_a_panel(storm: Comparison) -> None:
    fig = overlay(storm)
    panels = {ax.get_label(): ax for ax in fig.axes}
    assert {"goodput", "failures", "latency p99", "pool waiting", "database connections", "pods ready"} <= set(panels)
    for name in ("goodput", "pool waiting", "pods ready"):
        lines = panels[name].get_lines()
        assert [line.get_gid() for line in lines] == list(storm.results), name
    assert lines[0].get_color() == BASELINE_COLOUR
    assert len({line.get_color() for line in lines}) == len(storm.results)
    assert panels["goodput"].patches  # the trigger, shaded


def test_the_markdown_says_what_moved_and_who_did_best(storm: Comparison) -> None:
    text = storm.markdown()
    assert text.startswith("# Comparison: ")
    assert "| | **baseline** | **same** | **bigger_pool** | **timeout** |" in text
    assert f"- **timeout** (`{TIMEOUT}`): metastable → recovered" in text
    assert "- **same** (no overrides): still metastable; bad requests unchanged at" in text
    assert text.rstrip().endswith("bad requests.") and "## Best\n\n**timeout** did best: recovered" in text


# ---------------------------------------------------------------- the command


def _cli(argv: list[str]) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="spiralsim")
    add_compare_command(parser.add_subparsers(dest="command", required=True))
    out, err = io.StringIO(), io.StringIO()
    code = run_compare(parser.parse_args(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def test_the_command_writes_its_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    monkeypatch.chdir(tmp_path)
    code, out, err = _cli(["compare", str(path), "--variant", "wider:services.api.pool.max=6,duration=6",
                           "--set", "services.api.traffic.rate=40", "--seed", "7"])
    assert (code, err) == (0, "")
    folder = Path("runs") / "small-7-compare"
    assert out.splitlines()[-1] == str(folder)
    assert "wider" in out and "outcome" in out.splitlines()[0]
    assert {"comparison.csv", "comparison.md", "overlay.png", BASELINE, "wider"} <= {p.name for p in folder.iterdir()}
    for run in (BASELINE, "wider"):
        assert {p.name for p in (folder / run).iterdir()} == set(FILES)
    wider = load_scenario(folder / "wider" / "scenario.toml")
    assert (wider.seed, wider.duration, wider.services["api"].traffic.rate) == (7, 6.0, 40.0)
    assert len((folder / "comparison.csv").read_text().splitlines()) == 3


def test_the_command_uses_the_file_s_variants_and_is_quiet(tmp_path: Path) -> None:
    path = tmp_path / "small.toml"
    path.write_text(SMALL + FILE_VARIANTS)
    code, out, err = _cli(["compare", str(path), "--quiet", "--out", str(tmp_path / "out"), "--set", "duration=4"])
    assert (code, out, err) == (0, f"{tmp_path / 'out'}\n", "")
    assert {"wider", "control"} <= {p.name for p in (tmp_path / "out").iterdir()}


@pytest.mark.parametrize("argv, line", [
    (["--variant", "nocolon"], "spiralsim: error: --variant 'nocolon': expected NAME:KEY=VAL[,KEY=VAL...]"),
    (["--variant", "x:services.api.pool.maxx=3"],
     "spiralsim: error: variant x: services.api.pool.maxx: unknown key; did you mean max?"),
    (["--variant", "x:services.api.pool.max=3", "--set", "durationn=3"], "spiralsim: error: durationn: unknown key"),
    ([], "spiralsim: error: SMALL: no variants to compare; give --variant NAME:KEY=VAL or [[variants]] in the file"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, argv: list[str], line: str) -> None:
    path = tmp_path / "small.toml"
    path.write_text(SMALL)
    code, out, err = _cli(["compare", str(path), "--out", str(tmp_path / "out"), *argv])
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.replace(str(path), "SMALL").startswith(line)
    assert not (tmp_path / "out").exists()
