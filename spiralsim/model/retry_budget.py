"""A client's retry budget: a token bucket that lets retries be at most a ratio of successes.

Each success deposits `ratio` tokens (the SRE book's 10 %: 0.1), each retry takes
one; with less than one token the retry is denied and the request fails with its
last error. The bucket holds at most `BURST` tokens and starts full, so a healthy
client can retry a short burst of failures at once, but over any stretch retries
stay below ratio x successes + BURST: when nothing succeeds, nothing is retried.
"""
from __future__ import annotations

#: Tokens the bucket holds at most, and starts with (gRPC's retry throttling example: maxTokens 10).
BURST = 10.0


class RetryBudget:
    """`allow()` before a retry; `success()` after each successful attempt."""

    __slots__ = ("ratio", "tokens")

    def __init__(self, ratio: float):
        self.ratio = ratio
        self.tokens = BURST

    def success(self) -> None:
        """A success earns `ratio` of a retry."""
        tokens = self.tokens + self.ratio
        self.tokens = tokens if tokens < BURST else BURST

    def allow(self) -> bool:
        """Spend a token on a retry, if there is one."""
        if self.tokens >= 1.0 - 1e-9:  # ten deposits of 0.1 make a whole token
            self.tokens -= 1.0
            return True
        return False
