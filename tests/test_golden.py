"""Every shipped scenario reproduces its golden run to the bit (regenerate: `python tests/golden.py`)."""
from __future__ import annotations

import json

import pytest
from golden import fingerprint, path_for
from shipped import SCENARIOS, run


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_the_run_matches_its_golden_file(path):
    golden = path_for(path)
    assert golden.exists(), f"no golden run for {path.name}: run `python tests/golden.py`"
    expected = json.loads(golden.read_text())
    got = fingerprint(run(path))
    assert got["summary"] == expected["summary"]
    assert got["timeseries_csv_sha256"] == expected["timeseries_csv_sha256"], "timeseries.csv changed"
    assert got["events_csv_sha256"] == expected["events_csv_sha256"], "events.csv changed"


def test_every_golden_file_has_its_scenario():
    stems = {p.stem for p in SCENARIOS}
    orphans = [g.name for g in path_for(SCENARIOS[0]).parent.glob("*.json") if g.stem not in stems]
    assert not orphans, f"golden runs of scenarios no longer shipped: {orphans}"
