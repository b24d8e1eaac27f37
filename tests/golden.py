"""Golden runs: each shipped scenario's summary.json and the digests of its timeseries.csv
and events.csv, as committed in tests/golden/. A change that is meant to alter results
regenerates them on purpose with

    python tests/golden.py            (or: make golden)

and its commit says which figures moved and why. tests/test_golden.py compares a fresh
run of every shipped scenario with these files.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

GOLDEN = Path(__file__).parent / "golden"


def fingerprint(result) -> dict:
    """What a golden file holds of a run: the summary as written, and the CSVs' SHA-256."""
    from spiralsim.report.run_folder import events_csv, summary_json, timeseries_csv

    return {
        "summary": json.loads(summary_json(result.summary)),
        "timeseries_csv_sha256": hashlib.sha256(timeseries_csv(result.timeseries).encode()).hexdigest(),
        "events_csv_sha256": hashlib.sha256(events_csv(result.events).encode()).hexdigest(),
    }


def path_for(scenario: Path) -> Path:
    return GOLDEN / f"{scenario.stem}.json"


def main() -> int:
    sys.path.insert(0, str(Path(__file__).parent))
    from shipped import SCENARIOS, run

    GOLDEN.mkdir(exist_ok=True)
    for scenario in SCENARIOS:
        text = json.dumps(fingerprint(run(scenario)), indent=1, ensure_ascii=False) + "\n"
        old = path_for(scenario).read_text() if path_for(scenario).exists() else None
        path_for(scenario).write_text(text)
        print(f"{path_for(scenario)}: {'unchanged' if old == text else 'written'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
