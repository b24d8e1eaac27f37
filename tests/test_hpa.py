"""The HPA decision on worked examples, each computed by hand from the Kubernetes formula
desired = ceil(N x value / target), tolerance 0.1, clamp, max(+100 %, +4) per 15 s up,
the highest recommendation of 300 s down, not-ready pods at 0 % for cpu scale-ups."""
from __future__ import annotations

from spiralsim.model.hpa import Hpa, Observation
from spiralsim.scenario import AutoscalerConfig


def hpa(**kw) -> Hpa:
    kw.setdefault("max_replicas", 20)
    return Hpa(AutoscalerConfig(**kw))


def obs(current: int, value: float | None, ready: int | None = None, not_ready: int = 0) -> Observation:
    return Observation(current=current, value=value,
                       ready=current - not_ready if ready is None else ready, not_ready=not_ready)


# ---- tolerance and ceil -------------------------------------------------------------------------

def test_inside_tolerance_no_change():
    # 0.525 / 0.5 = 1.05; |1.05 - 1| = 0.05 <= 0.1 -> keep 4
    d = hpa(target=0.5).decide(0.0, obs(4, 0.525))
    assert (d.desired, d.recommendation, d.reason) == (4, 4, "within tolerance")
    assert abs(d.ratio - 1.05) < 1e-12


def test_outside_tolerance_changes():
    # 0.555 / 0.5 = 1.11; |1.11 - 1| = 0.11 > 0.1 -> ceil(4 x 1.11) = ceil(4.44) = 5
    d = hpa(target=0.5).decide(0.0, obs(4, 0.555))
    assert (d.desired, d.reason) == (5, "scale up")


def test_tolerance_below_one():
    # 0.46 / 0.5 = 0.92 -> |0.92 - 1| = 0.08 <= 0.1 -> keep 10
    assert hpa(target=0.5).decide(0.0, obs(10, 0.46)).desired == 10


def test_ceil():
    # current 3, cpu 0.9 vs 0.5: ratio 1.8; ceil(3 x 1.8) = ceil(5.4) = 6
    d = hpa(target=0.5).decide(0.0, obs(3, 0.9))
    assert (d.desired, d.recommendation, d.reason) == (6, 6, "scale up")


def test_ceil_ignores_float_noise():
    # 0.54 / 0.3 = 1.8 (1.8000000000000003 in floats); 5 x 1.8 = 9 (9.000000000000002) -> 9, not 10
    assert hpa(target=0.3).decide(0.0, obs(5, 0.54)).desired == 9
    # scale down: 0.04 / 0.1 = 0.4 (0.39999999999999997); 10 x 0.4 = 4 -> 4
    d = hpa(signal="latency_p99", target="100ms", scale_down_stabilization=0).decide(0.0, obs(10, 0.04))
    assert d.desired == 4


# ---- clamping -----------------------------------------------------------------------------------

def test_clamp_to_max():
    # ceil(3 x 0.9 / 0.5) = 6 > max 5 -> 5
    d = hpa(target=0.5, max_replicas=5).decide(0.0, obs(3, 0.9))
    assert (d.desired, d.recommendation) == (5, 5)
    assert d.reason.startswith("limited by max_replicas")


def test_clamp_to_min():
    # 0.1 / 0.5 = 0.2; ceil(3 x 0.2) = ceil(0.6) = 1 < min 2 -> 2 (no stabilization window)
    d = hpa(target=0.5, min_replicas=2, scale_down_stabilization=0).decide(0.0, obs(3, 0.1))
    assert (d.desired, d.recommendation) == (2, 2)
    assert d.reason.startswith("limited by min_replicas")


def test_current_outside_bounds_is_brought_back():
    # a schedule left 15 replicas with max 12: straight to 12, whatever the metric says
    d = hpa(target=0.5, max_replicas=12).decide(0.0, obs(15, 0.1))
    assert (d.desired, d.reason) == (12, "limited by max_replicas (15 replicas above it)")
    # 1 replica with min 3 -> 3
    d = hpa(target=0.5, min_replicas=3).decide(0.0, obs(1, 0.5))
    assert d.desired == 3 and d.reason.startswith("limited by min_replicas")


# ---- the scale-up rate --------------------------------------------------------------------------

def test_scale_up_rate_limit():
    # latency 1.2 s vs 100 ms: ratio 12, so every step wants ceil(current x 12), clamped to max 12
    h = hpa(signal="latency_p99", target="100ms", max_replicas=12)
    # 1 x 12 = 12; limit max(2 x 1, 1 + 4) = 5 -> 5
    d = h.decide(0.0, obs(1, 1.2))
    assert (d.desired, d.recommendation) == (5, 12)
    assert d.reason.startswith("limited by the scale-up rate")
    # 5 x 12 = 60 -> clamp 12; limit max(2 x 5, 5 + 4) = 10 -> 10
    d = h.decide(15.0, obs(5, 1.2))
    assert (d.desired, d.recommendation) == (10, 12)
    assert d.reason.startswith("limited by the scale-up rate")
    # 10 x 12 = 120 -> clamp 12; limit max(20, 14) = 20 -> 12
    d = h.decide(30.0, obs(10, 1.2))
    assert (d.desired, d.recommendation) == (12, 12)
    assert d.reason.startswith("limited by max_replicas")


def test_scale_up_rate_is_per_15_s_even_with_a_shorter_period():
    # period 5 s: the limit counts from the replicas at the start of the last 15 s
    h = hpa(signal="latency_p99", target="100ms", max_replicas=12, period="5s")
    assert h.decide(0.0, obs(1, 1.2)).desired == 5     # start 1: max(2, 5) = 5
    assert h.decide(5.0, obs(5, 1.2)).desired == 5     # start 5 - 4 = 1: limit 5 still
    assert h.decide(10.0, obs(5, 1.2)).desired == 5    # same
    assert h.decide(15.0, obs(5, 1.2)).desired == 10   # the +4 at t=0 left the 15 s: start 5 -> 10


# ---- scale-down stabilization ---------------------------------------------------------------------

def test_scale_down_stabilization_sequence():
    h = hpa(target=0.5)  # window 300 s
    # t=0: 0.5 / 0.5 = 1 -> recommendation 10
    assert h.decide(0.0, obs(10, 0.5)).desired == 10
    # t=15: 0.2 / 0.5 = 0.4; ceil(10 x 0.4) = 4; highest in (−285, 15] = 10 -> hold 10
    d = h.decide(15.0, obs(10, 0.2))
    assert (d.desired, d.recommendation) == (10, 4)
    assert d.reason == "held by scale-down stabilization (highest recommendation in 300 s: 10; wanted 4)"
    # t=30 .. 285: 0.15 / 0.5 = 0.3; ceil(10 x 0.3) = 3; the 10 of t=0 is still inside -> hold 10
    for k in range(2, 20):
        d = h.decide(15.0 * k, obs(10, 0.15))
        assert (d.desired, d.recommendation) == (10, 3), k
    # t=300: the window is (0, 300], the 10 of t=0 has left; highest left = 4 (t=15) -> 4
    d = h.decide(300.0, obs(10, 0.15))
    assert d.desired == 4 and d.reason.startswith("held by scale-down stabilization")
    # t=315: now 4 replicas at 0.375 -> 0.75; ceil(4 x 0.75) = 3; the 4 of t=15 has left,
    # everything in (15, 315] is 3 -> 3
    d = h.decide(315.0, obs(4, 0.375))
    assert (d.desired, d.reason) == (3, "scale down")


def test_stabilization_never_raises_above_current():
    h = hpa(target=0.5)
    h.decide(0.0, obs(10, 0.5))                       # recommendation 10
    # a schedule cut to 6; 0.2 / 0.5 = 0.4 -> ceil(2.4) = 3; highest 10 but never above 6 -> 6
    assert h.decide(15.0, obs(6, 0.2)).desired == 6


def test_a_scale_up_is_not_held():
    h = hpa(target=0.5)
    h.decide(0.0, obs(4, 0.1))                        # recommendation ceil(0.8) = 1
    # 0.9 / 0.5 = 1.8 -> ceil(4 x 1.8) = ceil(7.2) = 8, at once (no scale-up window)
    assert h.decide(15.0, obs(4, 0.9)).desired == 8


# ---- not-ready pods at 0 % for cpu ---------------------------------------------------------------

def test_not_ready_pods_cancel_the_scale_up():
    # ready 2 at 100 %, not ready 2, target 0.5: ratio 2; value' = 1.0 x 2 / 4 = 0.5 -> ratio' 1.0 -> no change
    d = hpa(target=0.5).decide(0.0, obs(4, 1.0, ready=2, not_ready=2))
    assert (d.desired, d.recommendation, d.ratio) == (4, 4, 1.0)
    assert d.reason.startswith("not-ready pods at 0 % cancel the scale-up")


def test_not_ready_pods_shrink_the_scale_up():
    # ready 2 at 100 %, not ready 2, target 0.4: ratio 2.5 (naively ceil(4 x 2.5) = 10);
    # value' = 1.0 x 2 / 4 = 0.5 -> ratio' 1.25 -> ceil(4 x 1.25) = 5
    d = hpa(target=0.4).decide(0.0, obs(4, 1.0, ready=2, not_ready=2))
    assert (d.desired, d.reason) == (5, "scale up")
    assert abs(d.ratio - 1.25) < 1e-12


def test_not_ready_correction_only_on_scale_up():
    # scale down: ready 2 at 10 %, not ready 2, target 0.5: 0.2 on the 2 ready pods -> ceil(0.4) = 1
    d = hpa(target=0.5, scale_down_stabilization=0).decide(0.0, obs(4, 0.1, ready=2, not_ready=2))
    assert (d.desired, d.ratio) == (1, 0.2)


def test_unready_pods_count_at_0_for_a_pods_metric_too():
    # calcPlainMetricReplicas sets unready (Pending) pods aside for every metric type:
    # inflight 6 per ready pod vs 2: ratio 3; with the 2 unready at 0: 12 / 4 = 3 per pod -> 1.5; ceil(4 x 1.5) = 6
    d = hpa(signal="inflight", target=2).decide(0.0, obs(4, 6.0, ready=2, not_ready=2))
    assert (d.desired, d.ratio) == (6, 1.5)


def test_never_scales_against_the_signal():
    # pool_waiting 4 per ready pod vs 2, 2 ready and 1 unready of 8 replicas (5 not created yet):
    # ratio 2; 8 / 3 pods / 2 = 1.333; ceil(3 x 1.333) = 4 < 8 -> keep 8
    d = hpa(signal="pool_waiting", target=2).decide(0.0, obs(8, 4.0, ready=2, not_ready=1))
    assert (d.desired, d.recommendation) == (8, 8)
    assert d.reason.startswith("no change: scale-up wanted")


# ---- latency signals, no data ---------------------------------------------------------------------

def test_latency_multiplies_the_ready_pods():
    # an Object metric (getUsageRatioReplicaCount): p99 0.3 s vs 200 ms: ratio 1.5 x the 2 Running and
    # Ready pods of 4 = 3: a recommendation below the 4 replicas, held by the first sync's 4
    d = hpa(signal="latency_p99", target="200ms").decide(0.0, obs(4, 0.3, ready=2, not_ready=2))
    assert (d.desired, d.recommendation, d.reason) == (4, 3, "held by scale-down stabilization "
                                                         "(highest recommendation in 300 s: 4; wanted 3)")
    # all 4 ready: ceil(4 x 1.5) = 6
    d = hpa(signal="latency_p99", target="200ms").decide(0.0, obs(4, 0.3))
    assert (d.desired, d.reason) == (6, "scale up")
    # latency_mean 0.05 s vs 200 ms: ratio 0.25; ceil(4 x 0.25) = 1
    d = hpa(signal="latency_mean", target="200ms", scale_down_stabilization=0).decide(0.0, obs(4, 0.05))
    assert d.desired == 1


def test_no_data():
    h = hpa(target=0.5)
    d = h.decide(0.0, obs(10, None, ready=0, not_ready=10))
    assert (d.desired, d.recommendation, d.ratio, d.reason) == (10, 10, None, "no data")
    # the 10 recorded for t=0 holds the next scale-down: 0.1 / 0.5 -> ceil(2) = 2, held at 10
    d = h.decide(15.0, obs(10, 0.1))
    assert (d.desired, d.recommendation) == (10, 2)
