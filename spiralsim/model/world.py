"""Builds a scenario's components, wires them and runs the simulation.

The lifecycle: build and wire (database, then per service its client,
balancer, pods and pools, handler, traffic), start the arrival processes, run
to the scenario's duration in slices (for progress), finalize the recording.
"""
from __future__ import annotations

from typing import Callable, Optional

import simpy

from ..metrics import Recorder, Recording
from .autoscaler import Autoscaler
from .balancer import Balancer
from .client import Client
from .database import Database
from .endpoint import Endpoint
from .handler import Handler
from .pod import GONE, READY, TERMINATING, Pod
from .rng import Draws, stream
from .timer import Timer
from .traffic import Evenly, RateCurve, Traffic, rate_segments

PROGRESS_SLICES = 100


class Service:
    """One service's runtime: its client, balancer, handler, pods and traffic."""

    def __init__(self, env: simpy.Environment, name: str, config, scenario, database: Database, recorder: Recorder):
        seed = scenario.seed
        self.env = env
        self.name = name
        self.series = series = recorder.services[name]
        self.client = Client(env, config.client, config.balancer.upstream_timeout, series, recorder, name,
                             Draws(stream(seed, f"{name}/jitter"), "uniform"))
        self.ready: list[Pod] = []
        self.balancer = Balancer(config.balancer.policy, self.ready, self.client.respond,
                                 Draws(stream(seed, f"{name}/routing"), "uniform"))
        self.client.route = self.balancer.route
        self.handler = Handler(env, database, series, recorder, name)
        self.endpoints = []
        for ep_name, ep in config.endpoints.items():
            kind = "normal" if ep.distribution == "lognormal" else "exponential"
            windows = [
                (inc.start, inc.end, inc.factor)
                for inc in scenario.incidents
                if inc.kind == "slow_queries"
                and (inc.services is None or name in inc.services)
                and (inc.endpoints is None or ep_name in inc.endpoints)
            ]
            self.endpoints.append(Endpoint(
                ep_name, ep,
                Draws(stream(seed, f"{name}/{ep_name}/work"), kind),
                Draws(stream(seed, f"{name}/{ep_name}/errors"), "uniform"),
                windows,
                Draws(stream(seed, f"{name}/{ep_name}/locks"), "uniform"),
                Draws(stream(seed, f"{name}/{ep_name}/orphans"), "uniform"),
            ))
        self.traffic = Traffic(
            env, RateCurve(rate_segments(config.traffic.rate, config.traffic.phases, scenario.duration)),
            Draws(stream(seed, f"{name}/arrivals"), "exponential") if config.traffic.arrivals == "poisson" else Evenly(),
            Draws(stream(seed, f"{name}/mix"), "uniform"),
            self.endpoints, [ep.weight for ep in config.endpoints.values()], self.client,
        )
        self.config = config
        self.database = database
        self.recorder = recorder
        self.pods: list[Pod] = []  # every pod not yet gone, in creation order
        self.created = 0
        self.desired = config.pod.replicas
        for _ in range(config.pod.replicas):
            self._new_pod().start_running()
        for step in sorted(config.pod.schedule, key=lambda s: s.at):
            if step.at < scenario.duration:
                Timer(env, step.at, self._on_schedule, step.replicas)
        self.autoscaler = Autoscaler(self, config.autoscaler) if config.autoscaler is not None else None

    def _new_pod(self) -> Pod:
        pod = Pod(self.env, self.created, self)
        self.created += 1
        self.pods.append(pod)
        return pod

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

    def _on_schedule(self, timer: Timer) -> None:
        n = timer.arg
        self.recorder.event(self.env.now, self.name, "schedule",
                            f"replicas set to {n} (from {self.desired})")
        self.set_replicas(n)


class World:
    """A scenario, built into SimPy components and ready to run once."""

    def __init__(self, scenario):
        self.scenario = scenario
        self.env = simpy.Environment()
        self.recorder = Recorder(scenario.duration, scenario.bucket, list(scenario.services))
        self.database = Database(self.env, scenario.database, self.recorder)
        self.services = {
            name: Service(self.env, name, cfg, scenario, self.database, self.recorder)
            for name, cfg in scenario.services.items()
        }
        self._log_triggers()
        for inc in scenario.incidents:
            if inc.kind in ("db_restart", "network_blip") and inc.start < scenario.duration:
                Timer(self.env, inc.start, self._incident, inc)

    def _incident(self, timer: Timer) -> None:
        inc = timer.arg
        if inc.kind == "db_restart":
            self.database.restart(inc.end)
        else:
            self.database.network_drop(inc.end)

    def _log_triggers(self) -> None:
        rec, duration = self.recorder, self.scenario.duration
        for inc in self.scenario.incidents:
            who = ",".join(inc.services) if inc.services else ""
            what = inc.kind + (f" x{inc.factor:g}" if inc.factor is not None else "") \
                + (f" on {','.join(inc.endpoints)}" if inc.endpoints else "")
            if inc.start < duration:
                rec.event(inc.start, who, "incident_start", what)
            if inc.end < duration:
                rec.event(inc.end, who, "incident_end", what)
        for name, cfg in self.scenario.services.items():
            base = cfg.traffic.rate
            for p in sorted(cfg.traffic.phases, key=lambda p: p.start):
                if p.start < duration:
                    how = "ramps" if p.ramp else "steps"
                    rec.event(p.start, name, "phase_start", f"rate {base:g} -> {p.rate:g} req/s ({how})")
                if p.end < duration:
                    rec.event(p.end, name, "phase_end", f"rate {p.rate:g} -> {base:g} req/s")

    def run(self, progress: Optional[Callable[[float], None]] = None) -> Recording:
        """Simulate to the end; `progress(fraction)` after each slice. Returns the recording."""
        for svc in self.services.values():
            svc.traffic.start()
        duration = self.scenario.duration
        env = self.env
        for k in range(1, PROGRESS_SLICES + 1):
            env.run(until=duration * k / PROGRESS_SLICES)
            if progress is not None:
                progress(k / PROGRESS_SLICES)
        recording = self.recorder.finalize(duration)
        for name, svc in self.services.items():
            recording.services[name].open_requests = svc.client.open_requests
        return recording
