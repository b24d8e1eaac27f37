"""What `spiralsim check` says of a scenario, rule by rule (analysis/check.py): a finding and
its status, and how its lines say a duration."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

FAIL, WARN, OK = "fail", "warn", "ok"


@dataclass(frozen=True)
class Finding:
    """One rule on one service ("" for the whole system): its status, its line with the numbers
    and the article's reason, and its numbers for --json (None for forever or unbounded)."""

    rule: str
    service: str
    status: str  # "fail", "warn" or "ok"
    line: str
    figures: dict[str, Any]


def duration(seconds: float) -> str:
    """A duration as the lines say it: `forever`, `15 s`, `20 ms`."""
    if not math.isfinite(seconds):
        return "forever"
    return f"{seconds:.3g} s" if seconds >= 1 or seconds == 0 else f"{1000 * seconds:.3g} ms"


def figure(x: float) -> float | None:
    """A figure for --json: None for forever (JSON has no infinity)."""
    return round(x, 6) if math.isfinite(x) else None


def pods(n: int, pool_max: int) -> str:
    """`1 pod x 10`, `12 pods x 10`."""
    return f"{n} pod{'' if n == 1 else 's'} x {pool_max}"
