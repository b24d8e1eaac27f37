"""`spiralsim check` on the terminal: the findings of analysis/check.py as lines (failed
first, then warnings, then passes, each group in rule order) and a last line summing up;
the JSON document of `--json`; and the failed findings `spiralsim run` prints before it runs."""
from __future__ import annotations

from typing import Any

from ..analysis.check import FAIL, OK, WARN, Finding, check
from ..scenario import Scenario
from .format import plural

#: `check(scenario)` (analysis/check.py) is re-exported for the command line, which reads no analysis.
__all__ = ["EXIT_RULES_FAIL", "check", "check_document", "check_lines", "exit_status", "failed_lines",
           "summary_line"]

#: The exit status of `spiralsim check` when any rule fails (0 when none does, 2 on bad input).
EXIT_RULES_FAIL = 1
_ORDER = {FAIL: 0, WARN: 1, OK: 2}


def _rules(findings: list[Finding]) -> dict[str, str]:
    """Each rule that applied (in rule order) and its worst status."""
    worst: dict[str, str] = {}
    for f in findings:
        if f.rule not in worst or _ORDER[f.status] < _ORDER[worst[f.rule]]:
            worst[f.rule] = f.status
    return worst


def summary_line(findings: list[Finding]) -> str:
    """`4 of 9 rules fail, 3 more warn` (a rule counts once, by its worst finding; one that does not
    apply, like the PgBouncer rules without PgBouncer, not at all)."""
    worst = _rules(findings)
    failed = sum(1 for s in worst.values() if s == FAIL)
    warned = sum(1 for s in worst.values() if s == WARN)
    more = " more" if failed else ""
    return f"{failed} of {plural(len(worst), 'rule')} fail" + (f", {warned}{more} warn" if warned else "")


def check_lines(findings: list[Finding]) -> list[str]:
    """One line per finding, `fail  RULE: LINE`, failed first, then the summing-up line."""
    ordered = sorted(findings, key=lambda f: _ORDER[f.status])  # stable: rule order within a status
    return [f"{f.status:<4}  {f.rule}: {f.line}" for f in ordered] + [summary_line(findings)]


def failed_lines(findings: list[Finding]) -> list[str]:
    """The failed findings only, as `spiralsim run` prints them before the run: `check: fail RULE: LINE`."""
    return [f"check: fail {f.rule}: {f.line}" for f in findings if f.status == FAIL]


def exit_status(findings: list[Finding]) -> int:
    """1 when any finding fails, else 0."""
    return EXIT_RULES_FAIL if any(f.status == FAIL for f in findings) else 0


def check_document(scenario: Scenario, findings: list[Finding]) -> dict[str, Any]:
    """`--json`: the scenario, whether any rule failed, the rules by status, every finding."""
    worst = _rules(findings)
    return {
        "scenario": scenario.name,
        "failed": any(s == FAIL for s in worst.values()),
        "rules": worst,
        "summary": summary_line(findings),
        "findings": [{"rule": f.rule, "service": f.service, "status": f.status, "line": f.line,
                      "figures": f.figures} for f in findings],
    }

