"""A time-weighted gauge (queue length, connections, pods): it integrates value x
seconds per bucket and keeps each bucket's peak and its value at the bucket's end.

The hot path writes into preallocated `array.array`s (fixed size, 8 bytes a slot;
a scalar update costs a third of a numpy item update).
"""
from __future__ import annotations

import math
from array import array


def zeros(n: int, typecode: str = "d") -> array:
    """A preallocated array of `n` zeros."""
    return array(typecode, bytes(array(typecode).itemsize * n))


class Level:
    """A time-weighted gauge: integrates value x seconds per bucket, keeps each bucket's peak.

    Most changes land in the same bucket as the previous one; that path is a
    comparison with the bucket's end and three array updates.
    """

    __slots__ = ("value", "t_last", "area", "peak", "sample", "inv_bucket", "bucket", "b", "b_end")

    def __init__(self, n_buckets: int, bucket: float, value: float = 0.0):
        self.value = value
        self.t_last = 0.0
        self.area = zeros(n_buckets + 1)
        self.peak = zeros(n_buckets + 1)
        self.sample = zeros(n_buckets + 1)  # the value at each bucket's end (a 1 s scrape)
        self.bucket = bucket
        self.inv_bucket = 1.0 / bucket
        self.peak[0] = value
        self.b = 0  # the bucket of t_last, and where it ends
        self.b_end = bucket

    def set(self, now: float, value: float) -> None:
        """The gauge takes `value` at time `now` (seconds)."""
        if now < self.b_end:
            b = self.b
            self.area[b] += self.value * (now - self.t_last)
        else:
            b = self._cross(now)
        self.t_last = now
        if value > self.peak[b]:
            self.peak[b] = value
        self.value = value

    def add(self, now: float, delta: float) -> None:
        """The gauge moves by `delta` at time `now`."""
        v = self.value
        if now < self.b_end:
            b = self.b
            self.area[b] += v * (now - self.t_last)
        else:
            b = self._cross(now)
        self.t_last = now
        v += delta
        self.value = v
        if v > self.peak[b]:
            self.peak[b] = v

    def _cross(self, now: float) -> int:
        """Integrate from t_last into a later bucket; returns the bucket of `now`."""
        v = self.value
        t = self.t_last
        bucket = self.bucket
        area, peak, sample = self.area, self.peak, self.sample
        b0 = self.b
        b1 = max(int(now * self.inv_bucket), b0 + 1)
        area[b0] += v * ((b0 + 1) * bucket - t)
        sample[b0] = v
        for b in range(b0 + 1, b1):
            area[b] += v * bucket
            sample[b] = v
            if v > peak[b]:
                peak[b] = v
        into = now - b1 * bucket
        if into > 0:
            area[b1] += v * into
            if v > peak[b1]:
                peak[b1] = v
        self.b = b1
        self.b_end = (b1 + 1) * bucket
        return b1

    def close(self, end: float) -> None:
        """Integrate up to `end` (the run's end) and sample the last, possibly short, bucket."""
        self.set(end, self.value)
        last = math.ceil(end * self.inv_bucket - 1e-9) - 1
        if last >= 0:
            self.sample[last] = self.value
