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
    comparison with the bucket's end and two float updates: the current bucket's
    area and peak so far are plain floats (`acc`, `pk`), written into the arrays
    when the gauge moves on to a later bucket and whenever `area` or `peak` is read
    (an array item update costs three times a float attribute's). They start from
    the arrays' zeros and take the same additions in the same order, so every
    figure is the one the arrays would hold.
    """

    __slots__ = ("value", "t_last", "_area", "_peak", "sample", "inv_bucket", "bucket", "b", "b_end", "acc", "pk")

    def __init__(self, n_buckets: int, bucket: float, value: float = 0.0):
        self.value = value
        self.t_last = 0.0
        self._area = zeros(n_buckets + 1)
        self._peak = zeros(n_buckets + 1)
        self.sample = zeros(n_buckets + 1)  # the value at each bucket's end (a 1 s scrape)
        self.bucket = bucket
        self.inv_bucket = 1.0 / bucket
        self.b = 0  # the bucket of t_last, and where it ends
        self.b_end = bucket
        self.acc = 0.0   # bucket b's value x seconds so far
        self.pk = value  # bucket b's peak so far

    @property
    def area(self) -> array:
        """Value x seconds per bucket (the current one's so far)."""
        self._area[self.b] = self.acc
        return self._area

    @property
    def peak(self) -> array:
        """Each bucket's peak (the current one's so far)."""
        self._peak[self.b] = self.pk
        return self._peak

    def set(self, now: float, value: float) -> None:
        """The gauge takes `value` at time `now` (seconds)."""
        if now < self.b_end:
            self.acc += self.value * (now - self.t_last)
        else:
            self._cross(now)
        self.t_last = now
        if value > self.pk:
            self.pk = value
        self.value = value

    def add(self, now: float, delta: float) -> None:
        """The gauge moves by `delta` at time `now`."""
        v = self.value
        if now < self.b_end:
            self.acc += v * (now - self.t_last)
        else:
            self._cross(now)
        self.t_last = now
        v += delta
        self.value = v
        if v > self.pk:
            self.pk = v

    def sub(self, now: float, delta: float) -> None:
        """The gauge falls by `delta` (> 0) at time `now`: `add(now, -delta)`, without the peak test in the
        same bucket (a fall cannot pass it: after every change the bucket's peak is at least the value)."""
        if now < self.b_end:
            v = self.value
            self.acc += v * (now - self.t_last)
            self.t_last = now
            self.value = v - delta  # (v + -delta, to the bit)
        else:
            self.add(now, -delta)

    def _cross(self, now: float) -> None:
        """Integrate from t_last into a later bucket, which becomes the current one."""
        v = self.value
        t = self.t_last
        bucket = self.bucket
        area, peak, sample = self._area, self._peak, self.sample
        b0 = self.b
        b1 = max(int(now * self.inv_bucket), b0 + 1)
        area[b0] = self.acc + v * ((b0 + 1) * bucket - t)
        peak[b0] = self.pk
        sample[b0] = v
        for b in range(b0 + 1, b1):
            area[b] += v * bucket
            sample[b] = v
            if v > peak[b]:
                peak[b] = v
        acc, pk = 0.0, 0.0  # bucket b1's, untouched so far
        into = now - b1 * bucket
        if into > 0:
            acc += v * into
            if v > pk:
                pk = v
        self.acc, self.pk = acc, pk
        self.b = b1
        self.b_end = (b1 + 1) * bucket

    def close(self, end: float) -> None:
        """Integrate up to `end` (the run's end) and sample the last, possibly short, bucket."""
        self.set(end, self.value)
        last = math.ceil(end * self.inv_bucket - 1e-9) - 1
        if last >= 0:
            self.sample[last] = self.value


def add_opposite(now: float, a: Level, b: Level, delta: float) -> None:
    """`a.add(now, delta)` then `b.add(now, -delta)` (two distinct gauges), their same-bucket paths
    in one call: a pool's idle connections and its pod's in-use ones move so at every acquire and release."""
    if now < a.b_end and now < b.b_end:
        v = a.value
        a.acc += v * (now - a.t_last)
        a.t_last = now
        v += delta
        a.value = v
        if v > a.pk:
            a.pk = v
        v = b.value
        b.acc += v * (now - b.t_last)
        b.t_last = now
        v -= delta
        b.value = v
        if v > b.pk:
            b.pk = v
    else:
        a.add(now, delta)
        b.add(now, -delta)
