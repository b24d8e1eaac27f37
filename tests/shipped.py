"""The shipped scenarios, each simulated once per test session and shared by the tests that read them."""
from __future__ import annotations

from pathlib import Path

from spiralsim import load_scenario, simulate

SCENARIOS = sorted((Path(__file__).parent.parent / "scenarios").glob("*.toml"))
_cache: dict[tuple, object] = {}


def run(path: Path, *overrides: str):
    """The result of `path` with `overrides`, simulated on first use."""
    key = (Path(path).resolve(), overrides)
    if key not in _cache:
        _cache[key] = simulate(load_scenario(path, overrides))
    return _cache[key]
