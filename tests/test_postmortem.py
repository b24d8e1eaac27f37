"""The counterfactual post-mortem: the registry of defences, each run alone with common
random numbers, and the verdict a teacher hands out."""
from __future__ import annotations

from pathlib import Path

import pytest
from shipped import SCENARIOS

from spiralsim import load_scenario
from spiralsim.cli import main
from spiralsim.experiments.counterfactuals import COUNTERFACTUALS, applicable
from spiralsim.experiments.postmortem import counterfactual_postmortem, render_counterfactuals

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def retry_storm():
    return counterfactual_postmortem(load_scenario(ROOT / "scenarios" / "retry_storm.toml"))


def test_the_counterfactuals_of_retry_storm_name_a_fix_that_recovers_it(retry_storm):
    results = retry_storm.comparison.results
    assert results["baseline"].summary["outcome"] == "metastable"
    assert results["no_retries"].summary["outcome"] == "recovered"  # the README's fix, found by itself
    text = render_counterfactuals(retry_storm)
    assert "Each of these alone would have turned it around: **no retries**" in text
    assert "| no retries: cap retries: a request tries once | `services.api.client.max_attempts=1` |" in text


def test_every_counterfactual_runs_on_the_same_requests(retry_storm):
    arrivals = {name: r.timeseries["arrivals"].tolist() for name, r in retry_storm.comparison.results.items()}
    assert len(set(map(tuple, arrivals.values()))) == 1


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_every_applicable_counterfactual_is_a_valid_scenario(path):
    scenario = load_scenario(path)
    for cf, overrides in applicable(scenario):
        load_scenario(path, overrides)  # raises ScenarioError if the registry wrote a bad override


def test_a_defence_already_in_place_or_with_nothing_to_defend_is_not_tried():
    leak = {cf.name for cf, _ in applicable(load_scenario(ROOT / "scenarios" / "leak.toml"))}
    assert "try/finally" in leak and "no retries" not in leak  # leak's client does not retry
    slow = {cf.name for cf, _ in applicable(load_scenario(ROOT / "scenarios" / "slow_query.toml"))}
    assert "idle_in_transaction_session_timeout 60 s" not in slow  # no transaction to leave open
    push = {cf.name for cf, _ in applicable(load_scenario(ROOT / "scenarios" / "push_spike.toml"))}
    assert "idle_in_transaction_session_timeout 60 s" in push  # its leaked sessions
    assert "max_replicas by the arithmetic" in push


def test_counterfactual_keys_are_variant_names():
    keys = [cf.key for cf in COUNTERFACTUALS]
    assert len(set(keys)) == len(keys)
    assert all(k.replace("_", "").isalnum() for k in keys)


def test_the_command_writes_the_post_mortem(tmp_path, capsys):
    path = tmp_path / "tiny.toml"
    path.write_text('duration = "20s"\n[services.api.traffic]\nrate = 20\n[services.api.endpoints.get]\n'
                    '[services.api.client]\nmax_attempts = 3\n')
    assert main(["postmortem", str(path), "--out", str(tmp_path / "pm"), "--quiet"]) == 0
    assert (tmp_path / "pm" / "counterfactuals.md").read_text().startswith("# Counterfactual post-mortem: tiny")
    assert (tmp_path / "pm" / "overlay.png").stat().st_size > 0
    assert (tmp_path / "pm" / "baseline" / "report.md").exists()
    assert capsys.readouterr().out.strip().endswith(str(tmp_path / "pm"))
    assert main(["postmortem", str(tmp_path / "missing.toml")]) == 2
