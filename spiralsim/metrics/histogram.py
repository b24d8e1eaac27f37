"""Latency histograms: log-spaced bins from 10 us to 10^4 s, 16 per decade (each
bin ~15 % wide), and their percentiles (interpolated geometrically inside a bin)."""
from __future__ import annotations

import math
import struct
from array import array
from bisect import bisect_right
from functools import partial

import numpy as np

HIST_LO_S = 1e-5
HIST_BINS_PER_DECADE = 16
HIST_BINS = 9 * HIST_BINS_PER_DECADE
HIST_EDGES_S = HIST_LO_S * 10.0 ** (np.arange(HIST_BINS + 1) / HIST_BINS_PER_DECADE)
_LOG_LO = math.log(HIST_LO_S)
_BINS_PER_LN = HIST_BINS_PER_DECADE / math.log(10.0)


def bin_by_log(seconds: float) -> int:
    """The histogram bin of a latency in seconds (clamped to the range): the definition of the bins."""
    if seconds <= HIST_LO_S:
        return 0
    k = int((math.log(seconds) - _LOG_LO) * _BINS_PER_LN)
    return k if k < HIST_BINS else HIST_BINS - 1


def _least_in_bin(k: int) -> float:
    """The least positive float that `bin_by_log` puts in bin `k` or above (bisection on the floats'
    bit patterns, which order positive floats as their values; `bin_by_log` rises with its argument)."""
    def bits(x: float) -> int:
        return struct.unpack("<q", struct.pack("<d", x))[0]

    lo, hi = bits(HIST_LO_S), bits(1e300)  # bin_by_log(lo) < k <= bin_by_log(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if bin_by_log(struct.unpack("<d", struct.pack("<q", mid))[0]) >= k:
            hi = mid
        else:
            lo = mid
    return struct.unpack("<d", struct.pack("<q", hi))[0]


#: Where each bin but the first starts, exactly as `bin_by_log` draws the line (143 floats).
HIST_BIN_STARTS_S = [_least_in_bin(k) for k in range(1, HIST_BINS)]

#: The histogram bin of a latency in seconds: `bin_by_log(seconds)` for every latency, found by a
#: binary search in C over `HIST_BIN_STARTS_S` (no Python frame, no logarithm).
hist_bin = partial(bisect_right, HIST_BIN_STARTS_S)
_STARTS = np.array(HIST_BIN_STARTS_S)
_SMALL_BATCH = 32  # fewer latencies than this are binned one by one (numpy's calls cost more)


class LatencyBatch:
    """The way into a per-bucket latency histogram (`counts`: HIST_BINS counts a bucket, an
    `array('l')`): the current bucket's latencies wait in `pending` and are binned together when a
    later bucket begins (`start`) or before the counts are read (`flush`).

    Latencies end in time order, so a bucket's are all appended before the next bucket's. The
    request path appends each latency to `pending` itself, after `start(b)` when its bucket `b` is
    not `bucket`: a list append, where a bin search and an array update were (two a request). The
    bins are `hist_bin`'s (a sorted search on the same starts, `side="right"` as `bisect_right`), so
    the counts are exactly those of binning each latency at once; memory is one bucket's latencies.
    """

    __slots__ = ("counts", "pending", "bucket")

    def __init__(self, counts: array):
        self.counts = counts
        self.pending: list[float] = []
        self.bucket = 0  # the bucket the pending latencies belong to

    def start(self, b: int) -> None:
        """Bucket `b` (later than `bucket`) begins: bin what waits, then collect for `b`."""
        self.flush()
        self.bucket = b

    def flush(self) -> None:
        """Bin the pending latencies into their bucket's counts (before the counts are read)."""
        pending = self.pending
        if not pending:
            return
        row = self.bucket * HIST_BINS
        if len(pending) < _SMALL_BATCH:
            counts = self.counts
            for seconds in pending:
                counts[row + hist_bin(seconds)] += 1
        else:
            # (through an array('d'): the same doubles, without numpy's look at each float for its dtype)
            bins = np.searchsorted(_STARTS, np.frombuffer(array("d", pending)), side="right")
            np.frombuffer(self.counts, dtype=np.int64)[row:row + HIST_BINS] += np.bincount(bins, minlength=HIST_BINS)
        pending.clear()


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
