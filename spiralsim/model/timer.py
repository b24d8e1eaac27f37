"""The one scheduling primitive of the request path: a callback at a later time.

A per-request SimPy *process* costs a generator, an Initialize event and a
Process event per step; the request path instead chains plain callbacks on
`Timer` events (SimPy's own mechanism, one event per scheduled action). This is
what lets a request cost a handful of events instead of dozens.
"""
from __future__ import annotations

from typing import Any, Callable

from simpy import Environment
from simpy.events import NORMAL, URGENT, Event


class Timer(Event):
    """A Timeout that calls `fn(timer)` after `delay` seconds; `timer.arg` is `arg`."""

    def __init__(self, env: Environment, delay: float, fn: Callable[[Any], None], arg: Any = None):
        self.env = env
        self.callbacks = [fn]
        self._value = arg
        self._ok = True
        env.schedule(self, NORMAL, delay)

    @property
    def arg(self) -> Any:
        return self._value


class Deadline(Timer):
    """A Timer for a timeout: at the same instant as any ordinary event, it goes first.

    So a tie between a deadline and the thing it guards (a release at exactly
    the acquire timeout, a response at exactly the client timeout) always goes
    to the timeout, whatever order the two were scheduled in.
    """

    def __init__(self, env: Environment, delay: float, fn: Callable[[Any], None], arg: Any = None):
        self.env = env
        self.callbacks = [fn]
        self._value = arg
        self._ok = True
        env.schedule(self, URGENT, delay)
