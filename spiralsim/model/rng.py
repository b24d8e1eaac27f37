"""Named random streams: one `numpy.random.Generator` per source of randomness.

Each stream is derived from the scenario seed and a stable name (never creation
order), so a variant that adds a component still sees the same arrivals and the
same statement work (common random numbers). Draws come in blocks, since a
single numpy draw per event costs more than the event itself.
"""
from __future__ import annotations

import hashlib

import numpy as np

BLOCK = 4096


def stream(seed: int, name: str) -> np.random.Generator:
    """The generator for `name` under `seed`; same pair, same numbers, always."""
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, key])))


class Draws:
    """Block-buffered draws of one kind from one stream (`uniform` or `exponential`)."""

    __slots__ = ("_gen", "_kind", "_buf", "_i")

    def __init__(self, gen: np.random.Generator, kind: str):
        if kind not in ("uniform", "exponential", "normal"):
            raise ValueError(kind)
        self._gen = gen
        self._kind = kind
        self._buf: list[float] = []
        self._i = 0

    def next(self) -> float:
        """One draw: U(0,1), Exp(1) or N(0,1)."""
        i = self._i
        try:
            x = self._buf[i]
        except IndexError:  # the block is used up (a try costs nothing until it catches; len() is a call)
            g = self._gen
            if self._kind == "uniform":
                self._buf = g.random(BLOCK).tolist()
            elif self._kind == "exponential":
                self._buf = g.standard_exponential(BLOCK).tolist()
            else:
                self._buf = g.standard_normal(BLOCK).tolist()
            i = 0
            x = self._buf[0]
        self._i = i + 1
        return x
