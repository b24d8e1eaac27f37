"""The kubelet as written: the restart backoff (at once, then 10 s doubling to 300 s, reset
after 10 minutes of running; client-go util/flowcontrol Backoff) and a restart that skips
the image pull. Exact logs of `(time, what)` on the LIFECYCLE pod (no traffic, no CPU)."""
from __future__ import annotations

from builders import LIFECYCLE, scenario

from spiralsim.model.timer import Timer
from spiralsim.model.world import World


def events(world: World, *kinds: str) -> list[tuple[float, str]]:
    return [(round(e.time, 6), e.detail) for e in world.recorder.events if e.kind in kinds]


def crash_at(world: World, *times: float) -> None:
    pod = world.services["api"].pods[0]
    for t in times:
        Timer(world.env, t, lambda _t: pod.crash("test"))


def test_backoff_sequence_0_10_20_up_to_300():
    # startup 1 s, and a crash as soon as it is ready again: crashes at 5, 6, 17, 38, 79, 160, 321, 622,
    # 923, 1224 (each the previous + its delay + 1 s); never 10 minutes of running, so never a reset.
    world = World(scenario(LIFECYCLE, "services.api.pod.startup=1s", duration="1300s"))
    pod = world.services["api"].pods[0]
    Timer(world.env, 5.0, lambda _t: pod.crash("test"))
    world.recorder.event = _crash_again_after_ready(world, pod, world.recorder.event)
    world.run()
    delays = [float(d.rsplit("restart in ", 1)[1][:-2]) for _, d in events(world, "pod_crash")]
    assert delays == [0, 10, 20, 40, 80, 160, 300, 300, 300, 300]
    assert [t for t, _ in events(world, "pod_crash")] == [5, 6, 17, 38, 79, 160, 321, 622, 923, 1224]
    restarts = [t for t, _ in events(world, "pod_restart")]
    crashes = [t for t, _ in events(world, "pod_crash")]
    assert [round(r - c, 6) for c, r in zip(crashes, restarts)] == delays[:len(restarts)]


def _crash_again_after_ready(world, pod, record):
    """Wrap the recorder's `event`: each `pod_ready` of the pod schedules its next crash at once."""
    def event(time, service, kind, detail, data=None):
        record(time, service, kind, detail, data)
        if kind == "pod_ready":
            Timer(world.env, 0.0, lambda _t: pod.crash("test"))
    return event


def test_backoff_resets_after_ten_minutes_of_running():
    world = World(scenario(LIFECYCLE, "services.api.pod.startup=1s", duration="900s"))
    # 100: first crash, at once (restarted 100); 110: 10 s (restarted 120); 130: 20 s (restarted 150);
    # 751: ran 601 s since its restart at 150 (> 600 s): the entry has expired, at once; 760: 10 s.
    crash_at(world, 100.0, 110.0, 130.0, 751.0, 760.0)
    world.run()
    assert events(world, "pod_crash") == [
        (100.0, "api-0 crashed: test; restart in 0 s"), (110.0, "api-0 crashed: test; restart in 10 s"),
        (130.0, "api-0 crashed: test; restart in 20 s"), (751.0, "api-0 crashed: test; restart in 0 s"),
        (760.0, "api-0 crashed: test; restart in 10 s")]
    assert [t for t, _ in events(world, "pod_restart")] == [100.0, 120.0, 150.0, 751.0, 770.0]


def test_exactly_ten_minutes_is_not_yet_expired():
    # hasExpired is `eventTime - lastUpdate > 2 x 300 s`: restarted at 110, a crash at 710 is 600 s later
    world = World(scenario(LIFECYCLE, "services.api.pod.startup=1s", duration="800s"))
    crash_at(world, 100.0, 110.0, 720.0)  # restarted at 100 (at once) and 120 (10 s); 720 - 120 = 600
    world.run()
    assert [d.rsplit("restart in ", 1)[1] for _, d in events(world, "pod_crash")] == ["0 s", "10 s", "20 s"]


def test_a_restart_skips_the_image_pull():
    # image_pull 20 s, startup 5 s: a new pod (schedule at 10 s) is ready at 10 + 20 + 5 = 35;
    # its crash at 50 restarts it at once, without the pull: ready at 55.
    world = World(scenario(LIFECYCLE, "services.api.pod.image_pull=20s", "services.api.pod.startup=5s",
                           duration="80s", services={"api": {"pod": {"schedule": [{"at": "10s", "replicas": 2}]}}}))
    svc = world.services["api"]
    Timer(world.env, 50.0, lambda _t: svc.pods[1].crash("test"))
    world.run()
    assert events(world, "pod_ready", "pod_crash", "pod_restart") == [
        (35.0, "api-1 ready (0 connections open)"),
        (50.0, "api-1 crashed: test; restart in 0 s"),
        (50.0, "api-1 restarted"),
        (55.0, "api-1 ready (0 connections open)")]
    starting = world.recorder.services["api"].pods_starting
    assert starting.peak[10] == 1 and starting.peak[34] == 1 and starting.peak[36] == 0


def test_image_pull_defaults_to_none():
    # the default: a new pod pays `startup` only (10 s), as before `image_pull` existed
    world = World(scenario(LIFECYCLE, duration="30s",
                           services={"api": {"pod": {"schedule": [{"at": "5s", "replicas": 2}]}}}))
    world.run()
    assert events(world, "pod_ready") == [(15.0, "api-1 ready (0 connections open)")]
