"""Latency histograms: log-spaced bins from 10 us to 10^4 s, 16 per decade (each
bin ~15 % wide), and their percentiles (interpolated geometrically inside a bin)."""
from __future__ import annotations

import math

import numpy as np

HIST_LO_S = 1e-5
HIST_BINS_PER_DECADE = 16
HIST_BINS = 9 * HIST_BINS_PER_DECADE
HIST_EDGES_S = HIST_LO_S * 10.0 ** (np.arange(HIST_BINS + 1) / HIST_BINS_PER_DECADE)
_LOG_LO = math.log(HIST_LO_S)
_BINS_PER_LN = HIST_BINS_PER_DECADE / math.log(10.0)


def hist_bin(seconds: float) -> int:
    """The histogram bin of a latency in seconds (clamped to the range)."""
    if seconds <= HIST_LO_S:
        return 0
    k = int((math.log(seconds) - _LOG_LO) * _BINS_PER_LN)
    return k if k < HIST_BINS else HIST_BINS - 1


def hist_percentiles(hist: np.ndarray, q: float) -> np.ndarray:
    """The q-quantile (0..1) in seconds of each row of a latency histogram; NaN where empty.

    Interpolates geometrically inside the bin that holds the quantile, so the
    error is bounded by the bin width (about 15 %).
    """
    hist = np.atleast_2d(hist)
    total = hist.sum(axis=1)
    out = np.full(hist.shape[0], np.nan)
    cum = np.cumsum(hist, axis=1)
    for i in np.nonzero(total)[0]:
        rank = q * total[i]
        k = int(np.searchsorted(cum[i], rank, side="left"))
        k = min(k, hist.shape[1] - 1)
        below = cum[i, k - 1] if k > 0 else 0
        frac = (rank - below) / hist[i, k] if hist[i, k] else 0.0
        lo, hi = HIST_EDGES_S[k], HIST_EDGES_S[k + 1]
        out[i] = lo * (hi / lo) ** min(max(frac, 0.0), 1.0)
    return out
