"""The one way tests build a scenario: a named base (a dict, as parsed from TOML)
plus changes, validated by `scenario_from_dict` like any scenario file.

Why: each test file used to write its own TOML template; now a test names its
base and states only what it changes, either as nested tables merged into the
base or as the CLI's `--set` strings, and gets a real, validated `Scenario`.
"""
from __future__ import annotations

from typing import Any

from spiralsim.scenario import Scenario, scenario_from_dict


def merge(base: dict, changes: dict) -> dict:
    """A new dict: `base` with `changes` merged in. A table (dict) in both merges key
    by key; any other value replaces (lists whole); None deletes the key (TOML has no null)."""
    out = dict(base)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def scenario(base: dict, *sets: str, **changes: Any) -> Scenario:
    """Validate `base` with the top-level `changes` merged in (see `merge`), then the
    `--set` strings applied: `scenario(TEXTBOOK, "services.api.pool.max=2", duration="30s")`."""
    return scenario_from_dict(merge(base, changes), overrides=sets)


#: A database whose connects cost only `connect_time`: no backend CPU, no postmaster queue. For
#: tests of other mechanisms' exact timing; the connection cost has its own (test_connection_cost.py).
FREE_CONNECTS: dict = {"connect_cpu": 0, "refused_connect_cpu": 0, "accept_rate": 0}

#: 8 requests a second, evenly spaced, until 5 s: 40 requests at 0.125 k s.
FORTY_ARRIVALS: dict = {
    "rate": 8,
    "arrivals": "deterministic",
    "phases": [{"start": "5s", "end": "1h", "rate": 0}],
}

#: The pool as a plain deterministic queue: one pod, one query endpoint `q` (no
#: statement time yet), no CPU, no timeouts, a warm pool of one, FORTY_ARRIVALS, free connects.
TEXTBOOK: dict = {
    "duration": "20s",
    "database": FREE_CONNECTS,
    "services": {"api": {
        "traffic": FORTY_ARRIVALS,
        "endpoints": {"q": {"statement_cpu": 0, "distribution": "deterministic"}},
        "client": {"timeout": 0},
        "balancer": {"upstream_timeout": 0},
        "pod": {"cpu_per_request": 0, "query_result_cpu": 0, "warm_connections": 1},
        "pool": {"max": 1, "idle_timeout": 0},
    }},
}

#: Pods that start, crash and scale: one pod, no traffic, endpoint `q` with no
#: statement time, no CPU, no timeouts, the default pool and database.
LIFECYCLE: dict = {
    "duration": "100s",
    "database": FREE_CONNECTS,
    "services": {"api": {
        "traffic": {"rate": 0},
        "endpoints": {"q": {"statement_cpu": 0, "distribution": "deterministic"}},
        "client": {"timeout": 0},
        "balancer": {"upstream_timeout": 0},
        "pod": {"cpu_per_request": 0, "query_result_cpu": 0},
        "pool": {"idle_timeout": 0},
    }},
}

#: Sessions, leaks and locks: 20 s, the default database, no services yet (add
#: SESSION_SERVICE under any name).
SESSIONS: dict = {"duration": "20s", "database": FREE_CONNECTS}

#: One service for SESSIONS: 8 requests a second, evenly spaced, until 0.2 s (one
#: request, at 0.125 s); endpoint `e` of 10 ms statements; a pod that starts in 1 s;
#: no CPU, no timeouts.
SESSION_SERVICE: dict = {
    "traffic": {"rate": 8, "arrivals": "deterministic", "phases": [{"start": "0.2s", "end": "10h", "rate": 0}]},
    "endpoints": {"e": {"statement_cpu": 0, "distribution": "deterministic", "statement_wait": "10ms"}},
    "client": {"timeout": 0},
    "balancer": {"upstream_timeout": 0},
    "pod": {"cpu_per_request": 0, "query_result_cpu": 0, "startup": "1s"},
    "pool": {"idle_timeout": 0},
}
