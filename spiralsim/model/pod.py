"""A pod: a lifecycle around one single-threaded event loop and its own pool (and, with read
replicas, one pool more per replica: the article's "one pool per replica").

starting (`image_pull` for a new pod, then `startup`) -> warming (opens `warm_connections`, the article's
"each new pod tries to open 10 connections at startup"; with `require_db_at_start` the first failed connect
crashes it) -> ready (the balancer routes to it) -> terminating on scale-down (drains, or exits at once
without `graceful_shutdown`). A crash (or an OOM kill) fails every attempt in flight, closes its connections
and restarts the container as the kubelet does: at once, then after 10 s, 20 s, ... at most 300 s
(CrashLoopBackOff), back to at once after 10 minutes of running; a restart finds the image on the node.
"""
from __future__ import annotations

from functools import partial
from typing import Callable

from simpy import Environment

from ..metrics import Level
from .concurrency_limit import AimdLimit
from .event_loop import EventLoop
from .pod_wiring import PodWiring
from .pool import Pool
from .probes import PHASE_STEP, Probe
from .request import Attempt
from .timer import Timer

STARTING, WARMING, READY, TERMINATING, CRASHLOOP, GONE = range(6)
RUNNING = frozenset((WARMING, READY, TERMINATING))  # the process is up: its event loop turns
STATE_LEVEL = {STARTING: "pods_starting", WARMING: "pods_warming", READY: "pods_ready",
               TERMINATING: "pods_terminating", CRASHLOOP: "pods_crashloop"}
# The kubelet's container restart backoff (client-go util/flowcontrol Backoff, kubelet's
# initial 10 s and MaxContainerBackOff 300 s): no entry at the first crash, so the restart
# is at once; then 10 s, doubling, capped; an entry older than 2 x 300 s has expired.
BACKOFF_FIRST_S = 10.0
BACKOFF_MAX_S = 300.0
BACKOFF_RESET_AFTER_S = 600.0
NO_BACKOFF = 0.0  # `Pod.backoff` before any crash (or after expiry): the next restart is at once
TERMINATION_GRACE_S = 30.0  # Kubernetes' terminationGracePeriodSeconds


class Pod:
    """One replica of a service. `gen` changes at every crash, so work of a dead
    container that is still scheduled (a CPU slot, a statement) is recognised and dropped."""

    lost = False  # its node is gone: a `node_loss.LostPod`, which serves no metrics and answers nothing
    # Slotted: with its ~40 attributes a Pod's `__dict__` outgrows CPython's shared keys, and then every
    # `pod.accept(...)`/`pod.finish(...)` of the request path is looked up the slow way.
    __slots__ = ("env", "index", "name", "wiring", "config", "series", "recorder", "respond", "handler", "ready",
                 "cpu_per_request", "max_inflight", "oom_inflight", "probes", "unready", "limit", "inv_bucket",
                 "bucket", "waiting_level", "in_use_level", "state", "gen", "pool", "read_pools", "next_read",
                 "attempts", "inflight", "loop", "started_at", "container_at", "pod_start", "ever_ready", "backoff",
                 "warm_pending", "pending", "on_idle", "idle_since", "warm_conns", "errors_seen")

    def __init__(self, env: Environment, index: int, wiring: PodWiring, levels: tuple[Level, Level] | None = None):
        """`levels`: its per-pod gauges (callers waiting, connections in use), new ones when None; a
        serverless fleet hands a reaped instance's to a new one, so memory follows the instances at once."""
        self.env = env
        self.index = index
        self.name = f"{wiring.service}-{index}"
        self.wiring = wiring
        config = wiring.config
        self.config = config
        self.series = wiring.series
        self.recorder = wiring.recorder
        self.respond = wiring.respond
        self.handler = wiring.handler
        self.ready = wiring.ready
        self.cpu_per_request = config.cpu_per_request
        self.max_inflight = config.max_inflight
        # requests in flight past which the container's memory passes its limit (0: no limit)
        self.oom_inflight = int((config.memory_limit_mb - config.memory_base_mb) * 1024 / config.request_memory_kb) \
            if config.memory_limit_mb > 0 and config.request_memory_kb > 0 else 0
        self.probes = tuple(Probe(env, self, cfg, live) for cfg, live in ((config.liveness, True),
                                                                           (config.readiness, False))
                            if cfg is not None)
        self.unready = False  # a failed readiness probe took it out of the balancer
        self.limit = AimdLimit(config, self.series.concurrency_limit, self.series.limited_pods
                               ) if config.adaptive_concurrency else None
        self.inv_bucket = wiring.recorder.inv_bucket
        self.bucket = wiring.recorder.bucket
        self.waiting_level, self.in_use_level = levels or (self.series.pod_level("waiting"),
                                                           self.series.pod_level("in_use"))
        self.state = GONE
        self.gen = 0
        self.pool: Pool | None = None  # on the primary (through PgBouncer, if the service has one)
        self.read_pools: list[Pool] = []  # one per read replica, straight to it
        self.next_read = 0  # the round robin over read_pools
        self.attempts: dict[int, Attempt] = {}  # in flight, by arrival order
        self.inflight = 0
        self.loop = EventLoop(env, self.series.cpu_busy, self.inv_bucket, self.bucket, wiring.busy_loops)
        self.started_at = 0.0
        self.backoff = BACKOFF_FIRST_S
        self.warm_pending = 0
        self.pending: Attempt | None = None  # serverless: the attempt that started this instance, until ready
        self.on_idle: Callable[["Pod"], None] | None = None  # serverless: tell the fleet it is free again
        self.idle_since = -1.0
        self.warm_conns: list = []  # connections warm-up holds until all n are open

    # --- lifecycle ---------------------------------------------------------
    def _state(self, state: int) -> None:
        now = self.env._now
        if self.state in STATE_LEVEL:
            getattr(self.series, STATE_LEVEL[self.state]).add(now, -1.0)
        if state in STATE_LEVEL:
            getattr(self.series, STATE_LEVEL[state]).add(now, 1.0)
        self.state = state

    def _new_pool(self) -> Pool:
        """A new process's pools: the primary's (returned), and one per read replica."""
        self.errors_seen: set[str] = set()
        if self.limit is not None:  # a new process: the limiter starts again
            self.limit.start(self.env._now)
        w = self.wiring
        pool = Pool(self.env, w.pool_config, w.connector, self.series, self.waiting_level, self.in_use_level,
                    w.service)
        pool.on_error = self._pool_error
        pool.on_client_error = self._client_error
        pool.loop = self.loop
        self.read_pools = []
        self.next_read = 0
        for replica in w.replicas:
            read = Pool(self.env, w.pool_config, replica, self.series, self.waiting_level, self.in_use_level,
                        w.service)
            read.replica = replica
            read.loop = self.loop
            read.on_error = self._pool_error
            read.on_client_error = partial(self._client_error, pool=read)
            self.read_pools.append(read)
        return pool

    def read_pool(self) -> Pool:
        """The pool of the read replica a read goes to: round robin over the replicas."""
        pools = self.read_pools
        i = self.next_read
        self.next_read = i + 1 if i + 1 < len(pools) else 0
        return pools[i]

    def start_running(self) -> None:
        """A pod that was running before the simulation: ready at once, warm connections open."""
        self.started_at = self.container_at = self.env._now
        self.pod_start = -float("inf")  # long before: past the HPA's cpu initialization period
        self.backoff = NO_BACKOFF
        self.ever_ready = True
        self.pool = self._new_pool()
        for _ in range(self.config.leaked_at_start):
            conn = self.pool.open_established()
            if conn is None:
                break
            self.handler.leaked_before(conn)
        self.pool.open_warm(self.config.warm_connections)
        self._ready(quiet=True)
        for probe in self.probes:
            probe.start((self.index * PHASE_STEP) % 1.0)

    def create(self) -> None:
        """A new container: starting (a new pod pulls its image first, a restart finds it on the node),
        then warming, then ready."""
        now = self.env._now
        pull = 0.0
        if self.state == GONE:  # a new pod: Pending while its image is pulled; no restart backoff yet
            pull = self.config.image_pull
            self.pod_start = now
            self.backoff = NO_BACKOFF
            self.ever_ready = False
        self.started_at = now
        self.container_at = now + pull  # its container runs from then (the pod's phase is Running)
        self._state(STARTING)
        Timer(self.env, pull + self.config.startup, self._warm, self.gen)

    def _warm(self, timer: Timer) -> None:
        if timer.arg != self.gen or self.state != STARTING:
            return
        self.pool = self._new_pool()
        n = self.config.warm_connections
        self._state(WARMING)
        for probe in self.probes:
            probe.start()
        if n == 0:
            self._ready()
            return
        self.warm_pending = n
        for _ in range(n):
            self.pool.acquire(self._warm_answer, (self.gen, self.pool))

    def _warm_answer(self, arg, conn, error: str | None) -> None:
        gen, pool = arg
        if gen != self.gen:  # the container this was for is gone
            if conn is not None:
                pool.release(conn)
            return
        if error is not None and self.config.require_db_at_start:
            self.crash(f"could not open its {self.config.warm_connections} connections at start ({error})")
            return
        if conn is not None:
            self.warm_conns.append(conn)
        self.warm_pending -= 1
        if self.warm_pending == 0:
            for c in self.warm_conns:
                pool.release(c, count_use=False)
            self.warm_conns = []
            self._ready()

    def _ready(self, quiet: bool = False) -> None:
        self._state(READY)
        self.ready.append(self)
        if not quiet:
            self.recorder.event(self.env._now, self.wiring.service, "pod_ready",
                                        f"{self.name} ready ({self.pool.total} connections open)")
        if self.pending is not None:
            att, self.pending = self.pending, None
            self.accept(att)
        elif self.on_idle is not None:
            self.on_idle(self)

    def terminate(self) -> None:
        """Scale-down: out of the balancer now; gone once its attempts have finished."""
        if self.state == READY:
            self._leave_balancer()
        if self.state in (STARTING, WARMING, CRASHLOOP) or not self.config.graceful_shutdown:
            self.gen += 1  # (no SIGTERM handler: Node exits at once, its requests fail, its sockets close)
            self._fail_inflight()
            self._gone()
            return
        self._state(TERMINATING)
        if not self.attempts:
            self._gone()
        else:
            Timer(self.env, TERMINATION_GRACE_S, self._kill, self.gen)

    def _kill(self, timer: Timer) -> None:
        if timer.arg == self.gen and self.state == TERMINATING:
            self._fail_inflight()
            self._gone()

    def _close_pool(self) -> None:
        """The process ends: its pools close, and so do connections warm-up still holds;
        the work its event loop had not yet run is gone."""
        self.loop.restart()
        if self.pool is None:
            return
        self.pool.destroy()
        for read in self.read_pools:
            read.destroy()
        for conn in self.warm_conns:
            self.pool.release(conn, count_use=False)
        self.warm_conns = []

    def _gone(self) -> None:
        if self.limit is not None:
            self.limit.stop(self.env._now)
        self._close_pool()
        self._state(GONE)

    def crash(self, reason: str, kind: str = "pod_crash") -> None:
        """The process died (`kind`: the event, `liveness_restart` when the kubelet killed it): attempts
        in flight fail, connections close, CrashLoopBackOff."""
        if self.state in (GONE, CRASHLOOP):
            return
        now = self.env._now
        if self.state == READY:
            self._leave_balancer()
            self.ever_ready = True
        was_terminating = self.state == TERMINATING
        self.gen += 1
        self._fail_inflight()
        self._close_pool()
        if self.limit is not None:
            self.limit.stop(now)
        self.series.crashes += 1
        if was_terminating:
            self._state(GONE)
            return
        if self.backoff == NO_BACKOFF or now - self.started_at > BACKOFF_RESET_AFTER_S:
            delay, self.backoff = 0.0, BACKOFF_FIRST_S  # no entry, or expired (ran > 10 min): at once
        else:
            delay = self.backoff
            self.backoff = min(BACKOFF_MAX_S, 2 * self.backoff)
        self._state(CRASHLOOP)
        self.recorder.event(now, self.wiring.service, kind, f"{self.name} crashed: {reason}; restart in {delay:g} s")
        Timer(self.env, delay, self._restart, self.gen)

    def evict(self) -> None:
        """Deleted by the control plane (its node is lost): out of the balancer, gone."""
        if self.state == READY:
            self._leave_balancer()
        self._gone()

    def _restart(self, timer: Timer) -> None:
        if timer.arg != self.gen or self.state != CRASHLOOP:
            return
        self.recorder.event(self.env._now, self.wiring.service, "pod_restart", f"{self.name} restarted")
        self.create()

    def _fail_inflight(self) -> None:
        if self.pending is not None:  # the request a cold start was for
            att, self.pending = self.pending, None
            self.respond(att, "pod_crashed")
        if not self.attempts:
            return
        attempts = list(self.attempts.values())
        self.attempts.clear()
        self.inflight = 0
        self.series.inflight.add(self.env._now, -len(attempts))
        for att in attempts:
            self.respond(att, "pod_crashed")

    def _pool_error(self, text: str) -> None:
        """pool.on('error'): without a listener (`crash_on_pool_error`) Node crashes."""
        self._note_error("pool_error", text)
        if self.config.crash_on_pool_error:
            self.crash(f"unhandled 'error' event from the pool ({text})")

    def _client_error(self, conn, text: str, pool: Pool | None = None) -> None:
        """'error' on a checked-out client of `pool` (the primary's if None): pg-pool has no listener on
        it while it is out. With `release_on_client_error` the app's listener calls client.release(err):
        the pool drops it."""
        self._note_error("client_error", text)
        if self.config.crash_on_client_error:
            self.crash(f"unhandled 'error' event on a checked-out client ({text})")
        elif self.config.release_on_client_error:
            (pool or self.pool).release(conn, True)

    def _note_error(self, kind: str, text: str) -> None:
        if kind not in self.errors_seen:  # the first of each kind per container is an event
            self.errors_seen.add(kind)
            self.recorder.event(self.env._now, self.wiring.service, kind, f"{self.name}: {text}")

    @property
    def running(self) -> bool:
        """The process is up and its event loop turns (warming, ready or terminating)."""
        return self.state in RUNNING

    @property
    def is_ready(self) -> bool:
        """Ready as Kubernetes says it: in the ready state, and no failed readiness probe."""
        return self.state == READY and not self.unready

    def _leave_balancer(self) -> None:
        if self.unready:
            self.unready = False
            self.series.pods_unready.add(self.env._now, -1.0)
        else:
            self.ready.remove(self)

    # --- requests ----------------------------------------------------------
    def accept(self, att: Attempt) -> None:
        """The balancer hands this pod an attempt."""
        if self.max_inflight and self.inflight >= self.max_inflight:
            self.respond(att, "shed")
            return
        if self.limit is not None and self.inflight >= self.limit.limit:
            self.respond(att, "concurrency_limited")
            return
        now = self.env._now
        self.inflight += 1
        if self.limit is not None:
            att.t0 = now
            att.inflight0 = self.inflight
        self.attempts[att.seq] = att
        self.series.inflight.add(now, 1.0)
        att.pod = self
        att.gen = self.gen
        if self.oom_inflight and self.inflight > self.oom_inflight:
            c = self.config
            self.crash(f"OOMKilled: {self.inflight:,} requests in flight at {c.request_memory_kb:g} KB each and"
                       f" {c.memory_base_mb:g} MB at rest pass its {c.memory_limit_mb:g} MB limit", "oom_killed")
            return
        loop, cost = self.loop, self.cpu_per_request
        delay = loop.later(cost) if cost > 0.0 or loop.free_at > now else 0.0  # (later(0) on an idle loop: 0)
        if delay > 0.0:
            Timer(self.env, delay, self._cpu_done, att)
        else:
            self.handler.start(att)

    def _cpu_done(self, timer: Timer) -> None:
        att = timer.arg
        if att.gen == self.gen:
            self.handler.start(att)

    def finish(self, att: Attempt, error: str | None) -> None:
        """The handler is done with an attempt; answer the balancer."""
        if att.gen != self.gen:
            return  # the pod crashed meanwhile and answered it then
        self.inflight -= 1
        del self.attempts[att.seq]
        now = self.env._now
        self.series.inflight.sub(now, 1.0)
        if self.limit is not None:
            self.limit.sample(now, now - att.t0, att.inflight0, error)
        self.respond(att, error)
        if self.state == TERMINATING and not self.attempts:
            self._gone()
        elif self.on_idle is not None and not self.attempts and self.state == READY:
            self.on_idle(self)

    def cpu_busy_until(self, now: float) -> float:
        """Seconds of event-loop CPU used up to `now`."""
        return self.loop.busy_until(now)
