"""Deadlines of one length (a client's timeout, the balancer's), kept at O(1) per attempt.

Scheduling one timeout event per attempt leaves every answered attempt's event on
SimPy's heap until its time comes: with a long timeout the heap holds the last
hour of attempts. Deadlines of one length come due in the order they are set, so
they wait in insertion order and only the earliest has an event on the heap; an
answered attempt's deadline is dropped at once (`cancel`).

They wait in a plain dict keyed by attempt number (increasing ints). Its first key is found by
counting up from the last head found (`_first`): every number is looked at once in a whole run.
(A dict's own first key is found by walking past every deleted entry before it, a wait that grows
with the attempts in flight; an OrderedDict finds it at once but costs more at every add and cancel,
the request path's part.)

Results are exactly those of one event per deadline: each deadline reserves its
event's sequence number (SimPy's `eid`) when it is set, and its event is pushed
with that number and its exact time when it reaches the head, so every tie with
any other event at the same instant goes the same way. (This reads two of
SimPy's internals, `Environment._queue` and `_eid`, as `Environment.schedule`
itself does.)
"""
from __future__ import annotations

from heapq import heappush
from typing import Any, Callable

from simpy import Environment
from simpy.events import URGENT


class _Due:
    """The one pending event of a DeadlineQueue (on SimPy's heap as a `Timer` is: not a `simpy.Event`)."""

    __slots__ = ("callbacks",)
    _ok = True

    def __init__(self, fn: Callable[[Any], None]):
        self.callbacks = [fn]


class DeadlineQueue:
    """`add(key, arg)` sets a deadline `length` seconds from now; `cancel(key)` drops it; when
    one comes due, `fire(arg)` (before any ordinary event of that instant, like `Deadline`).
    Keys are ints, each larger than the last one added (from 0 up)."""

    def __init__(self, env: Environment, length: float, fire: Callable[[Any], None]):
        self.env = env
        self.length = length
        self.fire = fire
        self.items: dict[int, tuple[float, int, Any]] = {}  # key -> (time, eid, arg), in the order added
        self.head = 0  # no key waiting is below it
        self.pending: int | None = None  # the eid of the event on the heap, if any
        self.firing = False  # inside `fire`: a deadline added now is not the head

    def __len__(self) -> int:
        return len(self.items)

    def add(self, key: int, arg: Any) -> None:
        """A deadline for `key`, `length` from now (keys are added in time order)."""
        env = self.env
        when = env._now + self.length
        eid = next(env._eid)  # the number its own event would have had
        self.items[key] = (when, eid, arg)
        if self.pending is None and not self.firing:
            self._push(when, eid)

    def cancel(self, key: int) -> None:
        """The attempt was answered: its deadline will not fire."""
        self.items.pop(key, None)

    def _first(self) -> int:
        """The earliest key still waiting (there is one): the first int from `head` up in `items`."""
        items, key = self.items, self.head
        while key not in items:
            key += 1
        self.head = key
        return key

    def _push(self, when: float, eid: int) -> None:
        self.pending = eid
        heappush(self.env._queue, (when, URGENT, eid, _Due(self._due)))

    def _due(self, event: _Due) -> None:
        """The head's event (or a cancelled head's): fire the head if it is due, then push the next."""
        self.pending = None
        items = self.items
        if not items:
            return
        key = self._first()
        when, eid, arg = items[key]
        if when <= self.env._now:
            del items[key]
            self.firing = True
            try:
                self.fire(arg)
            finally:
                self.firing = False
            if not items:
                return
            key = self._first()
            when, eid, _ = items[key]
        self._push(when, eid)  # the head's own event: its time and number, so ties go as they always did
