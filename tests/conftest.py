"""Test options: the long statistical checks marked `@pytest.mark.slow` run with `--runslow`,
or whenever the environment says CI=true (CI runs the README's plain `pytest`)."""
from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run the long statistical checks marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow") or os.environ.get("CI", "").lower() == "true":
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow (or CI=true)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
