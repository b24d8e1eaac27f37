"""Builds a scenario's components, wires them and runs the simulation.

The lifecycle: build and wire (database and its read replicas, then per service its client,
balancer, pods and pools, handler, traffic), start the arrival processes, run
to the scenario's duration in slices (for progress), finalize the recording.
"""
from __future__ import annotations

from typing import Callable, Optional

import simpy

from ..metrics import Recorder, Recording
from ..scenario import Scenario
from ..scenario.triggers import incidents, phases
from .database import Database
from .service import Service
from .timer import Timer, run_until

PROGRESS_SLICES = 100


class World:
    """A scenario, built into SimPy components and ready to run once."""

    def __init__(self, scenario: Scenario):
        self.scenario = scenario
        self.env = simpy.Environment()
        self.recorder = Recorder(scenario.duration, scenario.bucket, list(scenario.services),
                                 scenario.database.max_connections, scenario.database.read_replicas)
        roles = {name: svc.role for name, svc in scenario.services.items()}
        self.database = Database(self.env, scenario.database, self.recorder, roles=roles)
        # each a server of its own with the primary's settings (and the roles: ALTER ROLE is replicated);
        # the incidents below hit the primary only
        self.replicas = tuple(Database(self.env, scenario.database, self.recorder, i + 1, roles)
                              for i in range(scenario.database.read_replicas))
        self.incidents = incidents(scenario)
        self.services = {
            name: Service(self.env, name, cfg, scenario.seed, scenario.duration, self.incidents,
                          self.database, self.recorder, scenario.analysis.latency_p99_threshold, self.replicas)
            for name, cfg in scenario.services.items()
        }
        self._log_triggers()
        for inc in self.incidents:
            if inc.kind in ("db_restart", "network_blip", "node_lost") and inc.start < scenario.duration:
                Timer(self.env, inc.start, self._incident, inc)

    def _incident(self, timer: Timer) -> None:
        inc = timer.arg
        if inc.kind == "db_restart":
            self.database.restart(inc.end)
        elif inc.kind == "node_lost":
            for name in inc.services or self.services:
                self.services[name].lose_node(inc.pods, inc.end)
        else:
            self.database.network_drop(inc.end)

    def _log_triggers(self) -> None:
        """Every incident's and traffic phase's start and end inside the run, as events."""
        rec, duration = self.recorder, self.scenario.duration
        for inc in self.incidents:
            who = ",".join(inc.services)
            if inc.start < duration:
                rec.event(inc.start, who, "incident_start", inc.event_detail(), inc)
            if inc.end < duration:
                rec.event(inc.end, who, "incident_end", inc.event_detail(), inc)
        for p in phases(self.scenario):
            if p.start < duration:
                rec.event(p.start, p.service, "phase_start", p.start_detail(), p)
            if p.end < duration:
                rec.event(p.end, p.service, "phase_end", p.end_detail(), p)

    def run(self, progress: Optional[Callable[[float], None]] = None) -> Recording:
        """Simulate to the end; `progress(fraction)` after each slice. Returns the recording."""
        for svc in self.services.values():
            svc.traffic.start()
        duration = self.scenario.duration
        env = self.env
        for k in range(1, PROGRESS_SLICES + 1):
            run_until(env, duration * k / PROGRESS_SLICES)  # env.run(until=...), its loop inlined
            if progress is not None:
                progress(k / PROGRESS_SLICES)
        for db in (self.database, *self.replicas):
            db.report_memory()
        recording = self.recorder.finalize(duration)
        for name, svc in self.services.items():
            recording.services[name].open_requests = svc.client.open_requests
        return recording
