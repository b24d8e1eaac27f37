"""The pool as a textbook queue: a scenario in which queueing theory applies exactly.

One pod, no event-loop CPU, no client or balancer timeout, one `query` endpoint
with no database CPU (its statement time is a pure delay), and `c` connections
open and idle from the start (no connect time enters): the pool is then an
M/M/c queue (M/D/c with deterministic statements, M/M/c+D with an acquire
timeout). Used by the theory tests, the benchmark and notebooks.
"""
from __future__ import annotations


def queue_toml(c: int, lam: float, mu: float, duration: float, seed: int = 1, tau: float = 0.0,
               distribution: str = "exponential", bucket: float = 1.0) -> str:
    """Scenario text: Poisson arrivals at `lam`/s, service rate `mu`/s per connection,
    `c` connections, patience `tau` seconds (0 waits forever), `duration` seconds."""
    return f"""
name = "textbook_queue"
duration = {float(duration)!r}
seed = {seed}
bucket = {float(bucket)!r}

[database]
max_connections = {c + 10}
contention = false

[services.api.traffic]
rate = {float(lam)!r}

[services.api.endpoints.q]
kind = "query"
statement_cpu = 0
statement_wait = {1.0 / mu!r}
distribution = "{distribution}"

[services.api.client]
timeout = 0

[services.api.balancer]
upstream_timeout = 0

[services.api.pod]
replicas = 1
cpu_per_request = 0
query_result_cpu = 0
warm_connections = {c}

[services.api.pool]
max = {c}
idle_timeout = 0
acquire_timeout = {float(tau)!r}
"""
