"""Durations: parse the scenario file's `"1m30s"` strings into float seconds and back.

`parse_duration` sums the parts exactly (as fractions) and rounds once, so a
string always maps to the float nearest its exact value; `format_duration`
picks the most compact string that maps back to exactly the same float.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from fractions import Fraction

__all__ = ["UNITS", "parse_duration", "format_duration"]

#: Unit suffix -> seconds, largest first (the order parts must appear in).
UNITS: dict[str, Fraction] = {
    "h": Fraction(3600),
    "m": Fraction(60),
    "s": Fraction(1),
    "ms": Fraction(1, 1000),
    "us": Fraction(1, 1_000_000),
}
_UNIT_RANK = {unit: rank for rank, unit in enumerate(UNITS)}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?"
_PART = re.compile(rf"({_NUMBER})(us|ms|h|m|s)")
_WHOLE = re.compile(rf"(?:{_NUMBER}(?:us|ms|h|m|s))+")
_HINT = "use a unit: us, ms, s, m, h"


def _bad(value: object) -> ValueError:
    return ValueError(f"bad duration {value!r} ({_HINT})")


def _finite(number: object, value: object, not_finite: str) -> float:
    """`number` as a finite float; the errors name the original `value`."""
    try:
        seconds = float(number)
    except OverflowError:
        raise ValueError(f"duration {value!r} is too large") from None
    if not math.isfinite(seconds):
        raise ValueError(not_finite)
    return seconds


def parse_duration(value: object) -> float:
    """Seconds (float) from a number of seconds or a string like "1m30s", "5ms", "1.5s".

    Parts must come largest unit first, each unit at most once. A leading "-"
    is accepted (so a caller can report a negative duration by its value).
    Raises ValueError on anything else.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a duration like '5s' or a number of seconds, got {value!r}")
    if isinstance(value, (int, float)):
        return _finite(value, value, f"duration must be finite, got {value!r}")
    text = value.strip()
    negative = text.startswith("-")
    if negative:
        text = text[1:]
    if not _WHOLE.fullmatch(text):
        raise _bad(value)
    total = Fraction(0)
    last_rank = -1
    for number, unit in _PART.findall(text):
        rank = _UNIT_RANK[unit]
        if rank <= last_rank:
            raise ValueError(f"bad duration {value!r} (units must go largest first, each once)")
        last_rank = rank
        total += Fraction(Decimal(number)) * UNITS[unit]
    seconds = _finite(total, value, f"duration {value!r} is too large")
    return -seconds if negative else seconds


def _number_strings(x: float) -> list[str]:
    """Decimal spellings of x, shortest first (the shortest may not be exact)."""
    out: list[str] = []
    for text in [format(x, f".{digits}g") for digits in range(1, 18)] + [repr(x)]:
        if "e" in text and abs(int(text.split("e")[1])) <= 15:
            text = format(Decimal(text), "f")  # 5e+02 -> 500
        if text.endswith(".0"):
            text = text[:-2]
        if text not in out:
            out.append(text)
    return out


def _combined(x: float) -> str | None:
    """"1h30m", "1m30s" for a whole number of seconds of at least a minute."""
    if not (60 <= x < 2**53) or x != int(x):
        return None
    hours, rest = divmod(int(x), 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "m"), (seconds, "s")]
    return "".join(f"{n}{unit}" for n, unit in parts if n)


def _same(a: float, b: float) -> bool:
    return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)


def format_duration(seconds: float) -> str:
    """The most compact string ("5ms", "3s", "2m", "1m30s", "500us") that
    `parse_duration` maps back to exactly `seconds` (a finite float)."""
    x = float(seconds)
    if not math.isfinite(x):
        raise ValueError(f"duration must be finite, got {seconds!r}")
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    x = abs(x)
    if x == 0:
        return f"{sign}0s"
    combined = _combined(x)
    if combined is not None:
        return sign + combined
    candidates: list[tuple[int, bool, int, str]] = []
    for rank, (unit, factor) in enumerate(UNITS.items()):
        try:
            scaled = float(Fraction(x) / factor)
        except OverflowError:
            continue
        if scaled == 0:
            continue
        for number in _number_strings(scaled):
            text = number + unit
            try:
                if parse_duration(text) == x:
                    candidates.append((len(text), not number.isdigit(), rank, text))
            except ValueError:
                continue  # e.g. an exponent too long for the grammar
    if candidates:
        return sign + min(candidates)[3]
    return sign + repr(x) + "s"  # repr round-trips through the exact decimal
