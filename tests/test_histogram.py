"""The latency histogram's bins: the binary search the request path uses draws every line
exactly where the logarithm does, so a latency lands in the same bin either way."""
from __future__ import annotations

import random
import struct

from spiralsim.metrics.histogram import HIST_BIN_STARTS_S, HIST_BINS, bin_by_log, hist_bin


def _bits(x: float) -> int:
    return struct.unpack("<q", struct.pack("<d", x))[0]


def _float(i: int) -> float:
    return struct.unpack("<d", struct.pack("<q", i))[0]


def test_bin_starts_are_the_logarithms_lines_to_the_last_float():
    """Every float within 2,000 steps of each bin's start (far past the logarithm's error of
    under one step) is binned alike by both; each start is the first float of its bin."""
    assert len(HIST_BIN_STARTS_S) == HIST_BINS - 1
    for k, start in enumerate(HIST_BIN_STARTS_S, 1):
        assert bin_by_log(start) == k and bin_by_log(_float(_bits(start) - 1)) == k - 1
        for i in range(_bits(start) - 2000, _bits(start) + 2000):
            x = _float(i)
            assert hist_bin(x) == bin_by_log(x)


def test_hist_bin_agrees_everywhere_else():
    """Random latencies over 14 decades, and the edges of the range (clamped below and above)."""
    rng = random.Random(11)
    for _ in range(100_000):
        x = 10.0 ** rng.uniform(-8.0, 6.0)
        assert hist_bin(x) == bin_by_log(x)
    for x in (0.0, 5e-324, 1e-5, 1e4, 1e5, 1e300):
        assert hist_bin(x) == bin_by_log(x)
    assert hist_bin(0.0) == 0 and hist_bin(1e9) == HIST_BINS - 1


def test_latency_batch_counts_as_binning_each_at_once():
    """Latencies appended a bucket at a time, in batches large (numpy) and small (one by one), and
    flushed before reading: the very counts of binning each latency as it ends."""
    from spiralsim.metrics.histogram import LatencyBatch
    from spiralsim.metrics.level import zeros

    rng = random.Random(5)
    n_buckets = 6
    direct = zeros(n_buckets * HIST_BINS, "l")
    batched = LatencyBatch(zeros(n_buckets * HIST_BINS, "l"))
    for b, count in enumerate((0, 3, 500, 31, 32, 1000)):
        for _ in range(count):
            x = 10.0 ** rng.uniform(-6.0, 5.0)
            direct[b * HIST_BINS + bin_by_log(x)] += 1
            if b != batched.bucket:
                batched.start(b)
            batched.pending.append(x)
    batched.flush()
    assert batched.counts == direct and not batched.pending
