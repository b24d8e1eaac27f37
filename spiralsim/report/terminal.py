"""What every command says on the terminal the same way: bad input as one line per
problem with exit status 2, and the `--max-requests` argument."""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TextIO

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def bad_input(lines: Sequence[str], err: TextIO) -> int:
    """Print each problem as `spiralsim: error: LINE` on `err`; the exit status of bad input."""
    for line in lines:
        print(f"spiralsim: error: {line}", file=err)
    return EXIT_BAD_INPUT


def max_requests(text: str) -> float:
    """The `--max-requests` argument: a number > 0 (`1e9` and `inf` accepted)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of requests, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value
