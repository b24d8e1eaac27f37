"""node_lost: the node under a pod vanishes without a word (a kernel panic, a power cut, a partition).

No process is left to answer anything and no socket is closed, so nothing tells the
pod's clients or the database: the attempts in flight and whatever the balancer
still sends it wait for their clients' timeouts, and the server keeps every session
(idle, idle in transaction with its locks, or running a statement) until TCP
keepalive or `client_connection_check_interval` tells it (`keepalive.py`). The
control plane (kube-controller-manager's defaults) marks the node's pods NotReady
after the node-monitor grace period (they leave the balancer) and deletes them when
the unreachable taint's toleration runs out (300 s by default): only then does the
ReplicaSet create replacements, which need connections of their own.
"""
from __future__ import annotations

from typing import Any, Callable

from simpy import Environment

from .pod import GONE, Pod
from .timer import Timer

#: kube-controller-manager's --node-monitor-grace-period: a node silent this long is NotReady and its
#: pods' Ready condition false (40 s, the default up to Kubernetes 1.31).
NODE_MONITOR_GRACE_S = 40.0


class NodeLoss:
    """One pod on a lost node: its process gone at once, NotReady after the grace period, deleted at
    `evicted_at` (then `replace()`: the deployment's replica count is restored)."""

    __slots__ = ("env", "pod", "gen", "replace")

    def __init__(self, env: Environment, pod: Any, evicted_at: float, replace: Callable[[], None]):
        self.env, self.pod, self.replace = env, pod, replace
        now = env.now
        held, sessions = self._vanish(pod)
        self.gen = pod.gen
        pod.recorder.event(now, pod.wiring.service, "pod_lost",
                           f"{pod.name} lost with its node: {held:,} requests in flight never answered,"
                           f" {sessions:,} sessions left on the database")
        Timer(env, min(NODE_MONITOR_GRACE_S, evicted_at - now), self._not_ready)
        Timer(env, evicted_at - now, self._evicted)

    @staticmethod
    def _vanish(pod: Any) -> tuple[int, int]:
        """The process is gone: its work is dropped unanswered, its pools forget their connections
        without closing them. Returns (attempts in flight, sessions left)."""
        now = pod.env.now
        pod.gen += 1  # (work of the gone process still scheduled is recognised and dropped)
        pod.__class__ = LostPod  # (the same object, so the balancer's list and the deployment keep it)
        held = len(pod.attempts) + (pod.pending is not None)
        if pod.attempts:
            pod.series.inflight.add(now, -len(pod.attempts))
        pod.attempts.clear()
        pod.inflight, pod.pending = 0, None
        pod.loop.restart()
        sessions = 0
        for pool in ([pod.pool] if pod.pool is not None else []) + pod.read_pools:
            sessions += len(pool.conns)
            pool.vanish()
        pod.warm_conns = []
        return held, sessions

    def _not_ready(self, _timer: Timer) -> None:
        """The node controller sets the pod's Ready condition false: the balancer stops sending to it."""
        pod = self.pod
        if pod.gen == self.gen and pod.is_ready:
            pod.ready.remove(pod)
            pod.unready = True
            pod.series.pods_unready.add(self.env.now, 1.0)

    def _evicted(self, _timer: Timer) -> None:
        pod = self.pod
        if pod.gen != self.gen or pod.state == GONE:  # (scaled down meanwhile)
            return
        pod.recorder.event(self.env.now, pod.wiring.service, "pod_evicted",
                           f"{pod.name} deleted from its lost node: the deployment replaces it")
        pod.evict()
        self.replace()


class LostPod(Pod):
    """A pod whose node is gone: nothing answers what the balancer still sends it."""

    __slots__ = ()
    lost = True

    def accept(self, att: Any) -> None:
        """Nothing: its client's timeouts end the attempt."""
