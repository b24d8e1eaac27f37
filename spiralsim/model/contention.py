"""Contention past the cores: the database's throughput falls as more statements share them.

The model is Gunther's Universal Scalability Law, X(N) = lambda N / D(N) with
D(N) = 1 + sigma (N - 1) + kappa N (N - 1) (sigma: contention, serialised work;
kappa: coherency, the cost of keeping N workers consistent), applied to n, the
jobs on the CPU (statements in their CPU part and backends starting). The
numerator is capped by the hardware: while n <= cores nothing is shared and
nothing is lost (each job runs at full speed, exactly as without contention);
past the cores the cores deliver

    capacity(n) = cores * D(cores) / D(n)   core-seconds per second,

which is `cores` at n = cores and falls as n grows. Processor sharing divides
that among the n jobs (`CpuShare` inlines `share` on its hot path).

Calibration (`DatabaseConfig`'s defaults): facts.md §2, pgbench on 4 cores,
32 busy connections 24,206 tps, 64 -> 24,553, 90 -> 21,436. Mapped as a closed
loop of N clients each running one CPU-only statement after another (no think
time, no wait part), X(N) = capacity(N) / c. The three figures rise then fall,
which no curve that only falls past the cores can follow exactly; the minimax
fit of (c, sigma, kappa) is sigma = 0, kappa = 1.875e-5, c = 0.157 ms, within
3.5 % of each figure (tests/test_contention.py).
"""
from __future__ import annotations


def usl_denominator(n: float, sigma: float, kappa: float) -> float:
    """D(n) = 1 + sigma (n - 1) + kappa n (n - 1): how much slower n workers are than ideal."""
    return 1.0 + sigma * (n - 1) + kappa * n * (n - 1)


def capacity(n: int, cores: int, sigma: float, kappa: float) -> float:
    """Core-seconds per second that `cores` deliver to `n` jobs on the CPU (min(n, cores) without contention)."""
    if n <= cores:
        return float(n)
    return cores * usl_denominator(cores, sigma, kappa) / usl_denominator(n, sigma, kappa)


def share(n: int, cores: int, sigma: float, kappa: float) -> float:
    """The speed of each of `n` jobs under processor sharing: capacity(n) / n (1 while n <= cores)."""
    return 1.0 if n <= cores else capacity(n, cores, sigma, kappa) / n
