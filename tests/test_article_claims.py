"""The seed article, claim by claim (tests/claims.py): one test per claim with a run, named by its
number, so a claim that stops holding fails CI; and docs/article-claims.md is what the claims give.

Claims on the shipped scenarios as they are run in the default `pytest` (those runs are shared with
the other tests); claims on `--set` variants are marked slow (CI, or `--runslow`).
"""
from __future__ import annotations

import pytest
from claims import DOC, NOT_SIMULATION, all_claims, render, row

CLAIMS = all_claims()


def test_every_claim_of_the_table_is_here_once():
    assert [c.number for c in CLAIMS] == list(range(1, 70))


def test_each_claim_with_a_run_has_a_check_and_only_those():
    for c in CLAIMS:
        assert (c.check is None) == (c.status == NOT_SIMULATION or not c.runs), c.number
        assert c.status == "reproduced" or c.why or c.status == NOT_SIMULATION, f"claim {c.number}: say why"


@pytest.mark.parametrize("claim", [pytest.param(c, id=f"{c.number:02d}", marks=[pytest.mark.slow] if c.slow else [])
                                   for c in CLAIMS if c.check is not None])
def test_claim(claim):
    figure, holds = row(claim)
    assert holds, f"claim {claim.number} ({claim.says}) no longer holds: {figure}"


def test_the_document_lists_every_claim():
    text = DOC.read_text(encoding="utf-8")
    for c in CLAIMS:
        assert f"\n| {c.number} | {c.says} |" in text, f"docs/article-claims.md: claim {c.number} missing or stale"


@pytest.mark.slow
def test_the_document_is_what_the_claims_give():
    assert DOC.read_text(encoding="utf-8") == render(CLAIMS), "regenerate it: python tests/claims.py"
