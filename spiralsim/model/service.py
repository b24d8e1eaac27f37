"""One service's runtime: its client, balancer, handler, endpoints, traffic, its PgBouncer
if it has one, and the deployment of its pods (a replica count that a schedule or the
autoscaler sets). With read replicas and an endpoint that `reads`, each pod keeps a pool
per replica beside its pool on the primary (PgBouncer, if any, is in front of the primary only)."""
from __future__ import annotations

from simpy import Environment

from ..metrics import Recorder
from ..scenario import ServiceConfig
from ..scenario.triggers import Incident
from .autoscaler import Autoscaler
from .balancer import Balancer
from .client import Client
from .database import Database
from .endpoint import Endpoint
from .event_loop import LagSampler
from .handler import Handler
from .node_loss import NodeLoss
from .pgbouncer import PgBouncer
from .pod import GONE, READY, TERMINATING, Pod
from .pod_wiring import PodWiring
from .rng import Draws, stream
from .serverless import Fleet
from .timer import Timer
from .traffic import Evenly, RateCurve, Traffic, rate_segments


def _endpoints(name: str, config: ServiceConfig, seed: int, incidents: list[Incident]) -> list[Endpoint]:
    """The service's endpoints, each with its named random streams and its slow-query windows."""
    out = []
    for ep_name, ep in config.endpoints.items():
        kind = "normal" if ep.distribution == "lognormal" else "exponential"
        windows = [inc for inc in incidents
                   if inc.kind == "slow_queries"
                   and (not inc.services or name in inc.services)
                   and (not inc.endpoints or ep_name in inc.endpoints)]
        out.append(Endpoint(
            ep_name, ep,
            Draws(stream(seed, f"{name}/{ep_name}/work"), kind),
            Draws(stream(seed, f"{name}/{ep_name}/errors"), "uniform"),
            windows,
            Draws(stream(seed, f"{name}/{ep_name}/locks"), "uniform"),
            Draws(stream(seed, f"{name}/{ep_name}/orphans"), "uniform"),
            Draws(stream(seed, f"{name}/{ep_name}/transient"), "uniform"),
            Draws(stream(seed, f"{name}/{ep_name}/roles"), "uniform"),
        ))
    return out


class Service:
    """One service: wired at construction, its replicas running from time 0."""

    def __init__(self, env: Environment, name: str, config: ServiceConfig, seed: int, duration: float,
                 incidents: list[Incident], database: Database, recorder: Recorder, slow_after: float,
                 replicas: tuple[Database, ...] = ()):
        """`replicas`: the database's read replicas (the service keeps pools on them only if it reads)."""
        self.env = env
        self.name = name
        self.recorder = recorder
        self.series = series = recorder.services[name]
        self.client = Client(env, config.client, config.balancer.upstream_timeout, series, recorder, name,
                             Draws(stream(seed, f"{name}/jitter"), "uniform"), slow_after,
                             Draws(stream(seed, f"{name}/throttle"), "uniform"))
        self.ready: list[Pod] = []
        self.balancer = Balancer(config.balancer.policy, self.ready, self.client.respond,
                                 Draws(stream(seed, f"{name}/routing"), "uniform"))
        self.client.route = self.balancer.route
        self.fleet = None
        self.bouncer = (PgBouncer(env, config.pgbouncer, database, series, name)
                        if config.pgbouncer is not None else None)
        reads = frozenset(ep for ep, cfg in config.endpoints.items() if cfg.reads)
        self.handler = Handler(env, database, series, recorder, name, self.bouncer, reads,
                               config.pod.query_result_cpu, config.pool.query_timeout)
        self.endpoints = _endpoints(name, config, seed, incidents)
        traffic = config.traffic
        self.traffic = Traffic(
            env, RateCurve(rate_segments(traffic.rate, traffic.phases, duration)),
            Draws(stream(seed, f"{name}/arrivals"), "exponential") if traffic.arrivals == "poisson" else Evenly(),
            Draws(stream(seed, f"{name}/mix"), "uniform"),
            self.endpoints, [ep.weight for ep in config.endpoints.values()], self.client,
        )
        self.wiring = PodWiring(name, config.pod, config.pool, self.bouncer or database, series, recorder,
                                self.client.respond, self.handler, self.ready, replicas if reads else ())
        series.pool_max = config.pool.max * (1 + len(self.wiring.replicas))  # pool_utilization's unit
        self.pods: list[Pod] = []  # every pod not yet gone, in creation order
        self.created = 0
        if config.serverless is not None:  # the platform routes, one request per instance
            self.fleet = Fleet(env, config.serverless, self._new_pod, lambda: len(self.live_pods()),
                               self.client.respond, series)
            self.client.route = self.fleet.route
        self.desired = config.pod.replicas
        for _ in range(config.pod.replicas):
            pod = self._new_pod()
            if self.fleet is not None:
                self.fleet.adopt(pod)
            pod.start_running()
        for step in sorted(config.pod.schedule, key=lambda s: s.at):
            if step.at < duration:
                Timer(env, step.at, self._on_schedule, step.replicas)
        self.lag = LagSampler(env, self.wiring.busy_loops, self._running, series, recorder.inv_bucket)
        self.autoscaler = (Autoscaler(env, config.autoscaler, self, name, series, recorder)
                           if config.autoscaler is not None else None)

    def _new_pod(self, levels: tuple | None = None) -> Pod:
        pod = Pod(self.env, self.created, self.wiring, levels)
        self.created += 1
        self.pods.append(pod)
        return pod

    def _running(self) -> float:
        """How many pods' processes run now (warming, ready or terminating): their event loops turn."""
        s = self.series
        return s.pods_warming.value + s.pods_ready.value + s.pods_terminating.value

    def live_pods(self) -> list[Pod]:
        """Pods that count as replicas: all but the terminating and the gone."""
        self.pods = [p for p in self.pods if p.state != GONE]
        return [p for p in self.pods if p.state != TERMINATING]

    def set_replicas(self, n: int) -> None:
        """The deployment's replica count becomes `n`: create pods, or delete the
        not-ready ones first, then the newest (as a ReplicaSet does)."""
        self.desired = n
        live = self.live_pods()
        for _ in range(n - len(live)):
            self._new_pod().create()
        if len(live) > n:
            order = sorted(live, key=lambda p: (p.state == READY, -p.index))
            for pod in order[: len(live) - n]:
                pod.terminate()

    def lose_node(self, count: int, evicted_at: float) -> None:
        """node_lost: the node under `count` of the pods (the oldest not yet gone) vanishes; at `evicted_at`
        they are deleted and the deployment creates replacements."""
        for pod in [p for p in self.live_pods() if not p.lost][:count]:
            NodeLoss(self.env, pod, evicted_at, lambda: self.set_replicas(self.desired))

    def _on_schedule(self, timer: Timer) -> None:
        n = timer.arg
        self.recorder.event(self.env.now, self.name, "schedule", f"replicas set to {n} (from {self.desired})")
        self.set_replicas(n)
