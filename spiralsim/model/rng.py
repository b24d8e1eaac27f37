"""Named random streams: one `numpy.random.Generator` per source of randomness.

Each stream is derived from the scenario seed and a stable name (never creation
order), so a variant that adds a component still sees the same arrivals and the
same statement work (common random numbers). Draws come in blocks, since a
single numpy draw per event costs more than the event itself.
"""
from __future__ import annotations

import hashlib
from itertools import chain
from typing import Callable, Iterator

import numpy as np

BLOCK = 4096


def stream(seed: int, name: str) -> np.random.Generator:
    """The generator for `name` under `seed`; same pair, same numbers, always."""
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, key])))


class Draws:
    """Block-buffered draws of one kind from one stream (`uniform`, `exponential` or `normal`).

    `draws.next()`: one draw, U(0,1), Exp(1) or N(0,1). It is the `__next__` of a chain over blocks
    of `BLOCK` draws, each drawn when the one before is used up (as the stream's first is at the
    first draw): the same numbers in the same order, and a draw is a call into C, not a Python
    frame (three a request).
    """

    __slots__ = ("next",)

    def __init__(self, gen: np.random.Generator, kind: str):
        if kind not in ("uniform", "exponential", "normal"):
            raise ValueError(kind)
        block = {"uniform": gen.random, "exponential": gen.standard_exponential, "normal": gen.standard_normal}[kind]

        def blocks() -> Iterator[list[float]]:
            while True:
                yield block(BLOCK).tolist()

        self.next: Callable[[], float] = chain.from_iterable(blocks()).__next__
