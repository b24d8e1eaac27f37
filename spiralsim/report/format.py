"""The one set of formatters every line a user reads goes through: the console
summary, the post-mortem and the dashboard say a number the same way."""
from __future__ import annotations

import math
from typing import Optional

#: Runs longer than this show every time as h:mm:ss.
LONG_RUN_S = 3600.0


def mmss(seconds: float) -> str:
    """`mm:ss` (or `h:mm:ss` past an hour) of a simulated time."""
    s = int(math.floor(seconds + 1e-9))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60:02d}:{rest % 60:02d}"


def hmmss(seconds: float) -> str:
    """`h:mm:ss` of a simulated time, hours always shown."""
    s = int(math.floor(seconds + 1e-9))
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}"


def clock(seconds: float, run_end: float) -> str:
    """A time of a run: h:mm:ss in runs of hours, mm:ss otherwise."""
    return hmmss(seconds) if run_end > LONG_RUN_S else mmss(seconds)


def span(seconds: float) -> str:
    """A duration as a person says it: `4.5 s`, `45 s`, `12 min 5 s`, `3 h 12 min`."""
    s = int(round(seconds))
    if s < 60:
        return f"{seconds:.3g} s" if seconds < 10 else f"{s} s"
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    if h:
        return f"{h} h {m} min" if m else f"{h} h"
    return f"{m} min {sec} s" if sec else f"{m} min"


def count(x: float) -> str:
    """A count with thousands separators: `103,935`."""
    return f"{int(round(x)):,}"


def plural(n: float, one: str, many: Optional[str] = None) -> str:
    """`1 pod`, `3 pods`, `1,204 sessions`."""
    return f"{count(n)} {one if int(round(n)) == 1 else (many or one + 's')}"


def pct(share: float) -> str:
    """A share (0..1) as a percentage: `1.0 %`."""
    return f"{100.0 * share:.1f} %"


def ms(value_ms: Optional[float]) -> str:
    """A latency given in milliseconds: `4.2 ms`, `81 ms`, `1.5 s`, `30 s`; `–` when there is none."""
    if value_ms is None or not math.isfinite(value_ms):
        return "–"
    if value_ms >= 1000.0:
        return f"{value_ms / 1000.0:.2g} s" if value_ms < 10000.0 else f"{value_ms / 1000.0:.0f} s"
    return f"{value_ms:.1f} ms" if value_ms < 10.0 else f"{value_ms:.0f} ms"


def seconds(value_s: float) -> str:
    """A threshold in seconds: `1 s`, `0.25 s`, `15 s`."""
    return f"{value_s:.0f} s" if value_s >= 10 else f"{value_s:.3g} s"


def cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")
