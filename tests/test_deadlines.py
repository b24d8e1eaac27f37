"""The client's deadlines in one ordered queue per length: they fire exactly when, and in the
order, one event per deadline would, ties with other events included; an answered attempt's
deadline is gone at once, so the heap holds the attempts in flight, not the last hour of them."""
from __future__ import annotations

import simpy

from spiralsim.model.deadlines import DeadlineQueue
from spiralsim.model.timer import Deadline, Timer


def _script(use_queue: bool) -> list[tuple[float, str]]:
    """Deadlines of 2 s set at 0, 0.5, 1 and 1 s; the one set at 0.5 s is cancelled at 1.2 s; other
    events (Deadlines and plain Timers) fall at exactly 2 s and 3 s, set between them."""
    env = simpy.Environment()
    log: list[tuple[float, str]] = []
    q = DeadlineQueue(env, 2.0, lambda name: log.append((env.now, name))) if use_queue else None
    keep: dict[str, bool] = {}

    def add(name: str) -> None:
        if q is not None:
            q.add(len(keep), name)
        else:
            Deadline(env, 2.0, lambda t: keep[t.arg] and log.append((env.now, t.arg)), name)
        keep[name] = True

    def cancel(name: str) -> None:
        keep[name] = False
        if q is not None:
            q.cancel(list(keep).index(name))

    add("a")
    Timer(env, 0.5, lambda t: add("b"))
    Timer(env, 0.5, lambda t: Deadline(env, 1.5, lambda _: log.append((env.now, "other deadline"))))
    Timer(env, 1.0, lambda t: add("c"))
    Timer(env, 1.0, lambda t: Deadline(env, 2.0, lambda _: log.append((env.now, "other deadline at 3"))))
    Timer(env, 1.0, lambda t: Timer(env, 2.0, lambda _: log.append((env.now, "timer at 3"))))
    Timer(env, 1.0, lambda t: add("d"))
    Timer(env, 1.2, lambda t: cancel("b"))
    Timer(env, 2.0, lambda t: log.append((env.now, "timer at 2")))
    env.run()
    return log


def test_the_queue_fires_as_one_event_per_deadline_would():
    # at 3 s another deadline set between c's and d's goes between them, as it always did
    expected = [(2.0, "a"), (2.0, "other deadline"), (2.0, "timer at 2"), (3.0, "c"), (3.0, "other deadline at 3"),
                (3.0, "d"), (3.0, "timer at 3")]
    assert _script(use_queue=False) == expected
    assert _script(use_queue=True) == expected


def test_only_the_deadlines_of_attempts_in_flight_are_kept():
    env = simpy.Environment()
    fired: list[int] = []
    q = DeadlineQueue(env, 3600.0, fired.append)

    def attempt(timer: Timer) -> None:
        k = timer.arg
        q.add(k, k)
        Timer(env, 0.005, lambda t: q.cancel(k))  # answered after 5 ms
        if k < 10_000:
            Timer(env, 0.001, attempt, k + 1)

    Timer(env, 0.0, attempt, 0)
    peak = 0
    while env.peek() < 60:
        env.step()
        peak = max(peak, len(env._queue), len(q))
    assert not fired and len(q) == 0
    assert peak < 20  # a handful in flight, not 10,000 pending timeouts
