"""The one scheduling primitive of the request path: a callback at a later time.

A per-request SimPy *process* costs a generator, an Initialize event and a
Process event per step; the request path instead chains plain callbacks on
`Timer` events (one entry on SimPy's heap per scheduled action, popped by SimPy's
loop as any event is). This is what lets a request cost a handful of events
instead of dozens.
"""
from __future__ import annotations

from heapq import heappop, heappush
from typing import Any, Callable

from simpy import Environment
from simpy.events import NORMAL, URGENT, Event


class Timer:
    """A callback: `fn(timer)` after `delay` seconds; `timer.arg` is `arg`.

    It goes on SimPy's heap as any event does (same time, priority and sequence number as
    `env.schedule` gives), but it is not a `simpy.Event`: it holds only what SimPy's loop reads of
    an event it pops (`callbacks`, `_ok`), in slots, with `arg` a plain slot. An Event carries a
    `__dict__` and an `env`, and `arg` was a property over its value: two timers per request.
    Nothing yields a Timer from a process; a callback is all it is for.
    """

    __slots__ = ("callbacks", "arg")
    _ok = True  # what SimPy's loop checks after the callbacks: a timer never fails

    def __init__(self, env: Environment, delay: float, fn: Callable[[Any], None], arg: Any = None):
        self.callbacks = [fn]
        self.arg = arg
        heappush(env._queue, (env._now + delay, NORMAL, next(env._eid), self))  # env.schedule(self, NORMAL, delay)


class Deadline(Timer):
    """A Timer for a timeout: at the same instant as any ordinary event, it goes first.

    So a tie between a deadline and the thing it guards (a release at exactly
    the acquire timeout, a response at exactly the client timeout) always goes
    to the timeout, whatever order the two were scheduled in.
    """

    __slots__ = ()

    def __init__(self, env: Environment, delay: float, fn: Callable[[Any], None], arg: Any = None):
        self.callbacks = [fn]
        self.arg = arg
        heappush(env._queue, (env._now + delay, URGENT, next(env._eid), self))  # env.schedule(self, URGENT, delay)


def schedule(env: Environment, delay: float, callbacks: tuple[Callable[[Any], None]], item: Any) -> None:
    """Put `item` itself on SimPy's heap: each of `callbacks` is called with it after `delay` seconds,
    as a Timer's callback is called.

    For what is already an object of its own and needs an event (a statement's wait) or comes back
    again and again (a service's next arrival, its Timer used anew): no Timer to make (an allocation
    and a constructor call, once a request each). `callbacks` is a tuple its caller makes once (SimPy's
    loop only iterates over it, then empties the item's slot: no list a time). `item` has a
    `callbacks` slot and `_ok` true, and is on the heap once at a time. The same time, priority and
    sequence number as a Timer's, so every tie resolves as it did.
    """
    item.callbacks = callbacks
    heappush(env._queue, (env._now + delay, NORMAL, next(env._eid), item))  # env.schedule(item, NORMAL, delay)


def run_until(env: Environment, at: float) -> None:
    """`env.run(until=at)` for a time `at` later than now, with SimPy's `step()` inlined in the loop.

    The same stop event (URGENT, at `now + (at - now)`, its sequence number taken when it is
    scheduled), the same order of events and callbacks, a failed event not defused raised
    the same way; it saves a method call and a try block per event (two events per request).
    The model never raises StopSimulation from a callback, the one case it does not handle.
    """
    if at <= env._now:
        raise ValueError(f"until ({at}) must be greater than the current simulation time")
    stop = Event(env)
    stop._ok = True
    stop._value = None
    heappush(env._queue, (env._now + (at - env._now), URGENT, next(env._eid), stop))
    queue = env._queue
    while True:
        env._now, _, _, event = heappop(queue)
        if event is stop:
            stop.callbacks = None  # processed, as SimPy leaves it
            return
        callbacks, event.callbacks = event.callbacks, None
        for callback in callbacks:
            callback(event)
        if not event._ok and not hasattr(event, "_defused"):
            exc = type(event._value)(*event._value.args)
            exc.__cause__ = event._value
            raise exc
