"""A discrete-event simulation of the worker fleet under its scaling policies.

The policies are ``capacity_policy.Policies`` (read from Terraform). What AWS does around them
is modelled as AWS documents it, with these figures (not in Terraform):
- CloudWatch samples each metric once a minute; alarms see datapoints ``metric_lag_min`` late.
- Target tracking: its scale-out alarm needs 3 of 3 datapoints above the target, its scale-in
  alarm 15 of 15 below 90% of it; the new capacity is ceil(current * metric / target), where
  current is the desired count (App Auto Scaling's current capacity).
- A policy is invoked every minute while its alarm is in ALARM. Within a policy's scale-out
  cooldown, "the capacity added by the scale-out that started it counts as part of the desired
  capacity for the next": the new capacity is computed from the capacity before that scale-out
  and applied only if larger than the current one.
- One task per GPU instance. A task that needs an instance waits ``provision_delay_s`` (the
  capacity provider's reaction) plus the boot and image pull, drawn uniformly between the
  bounds. A stopped task's instance lingers ``instance_linger_s`` (managed scaling's scale-in)
  and a new task starts on it in ``task_start_s``.
- Scale-in never stops a task that runs a job (task scale-in protection): it stops booting
  tasks, then idle ones; a busy task over the desired count stops when its job ends.
- Spot instances are interrupted at a rate per instance-hour: the job in progress goes back to
  the queue and resumes from its checkpoints on another worker, losing the stage in progress.
  A hand-back spends one receive if ``handback_spends_receive`` (the worker before it put jobs
  back as fresh messages; the worker now does not); a job whose
  next receive would exceed maxReceiveCount is dead-lettered.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass
from typing import Any

from bench.capacity_policy import Policies, StepPolicy

TICK_S = 60.0
TT_HIGH_DATAPOINTS = 3
TT_LOW_DATAPOINTS = 15
TT_LOW_FRACTION = 0.9
VISIBLE = ("AWS/SQS", "ApproximateNumberOfMessagesVisible")
IN_FLIGHT = ("AWS/SQS", "ApproximateNumberOfMessagesNotVisible")
DESIRED = ("ECS/ContainerInsights", "DesiredTaskCount")
RUNNING = ("ECS/ContainerInsights", "RunningTaskCount")
PENDING = ("ECS/ContainerInsights", "PendingTaskCount")
_COMPARE = {
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t, "GreaterThanThreshold": lambda v, t: v > t,
    "LessThanThreshold": lambda v, t: v < t, "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}


@dataclass(frozen=True)
class Fleet:
    """How the world around the policies behaves (see the module docstring)."""

    boot_min_s: float = 240.0
    boot_max_s: float = 600.0
    provision_delay_s: float = 60.0
    task_start_s: float = 30.0
    instance_linger_s: float = 900.0
    spot_fraction: float = 0.75
    spot_interruptions_per_hour: float = 0.02
    gpu_speed: float = 1.0
    metric_lag_min: int = 2
    max_receive_count: int = 3
    handback_spends_receive: bool = False


@dataclass
class Job:
    arrival: float
    stage: int = 0
    receives: int = 0
    end: float | None = None
    dlq: bool = False


@dataclass
class Worker:
    launched: float
    spot: bool
    ready: float | None = None  # instance booted and image pulled
    state: str = "booting"  # booting | starting | idle | busy | empty | gone
    has_task: bool = True
    job: Job | None = None
    stage_started: float = 0.0
    work_s: float = 0.0
    gone_at: float | None = None
    gen: int = 0


@dataclass
class _Cooldown:
    """A policy's scale-out cooldown: within it, new capacity is computed from ``base``, the
    capacity before the scale-out that started it, and applied only if larger (AWS's rule)."""

    until: float = -math.inf
    base: int = 0


@dataclass
class Result:
    latencies_s: list[float]
    dlq: int
    unfinished: int
    interruptions: int
    peak_fleet: int
    work_s: float
    boot_s: float
    idle_s: float
    jobs: int


class Simulation:
    """One run: the given arrivals and job stages under the given policies."""

    def __init__(self, policies: Policies, fleet: Fleet, arrivals: list[float],
                 stages_s: list[float], seed: int) -> None:
        self.p, self.f = policies, fleet
        self.stages_s = [s / fleet.gpu_speed for s in stages_s]
        self.jobs = [Job(a) for a in arrivals]
        self.rng_boot = random.Random(f"{seed}-boot")
        self.rng_spot = random.Random(f"{seed}-spot")
        self.events: list[tuple[float, int, str, Any]] = []
        self._seq = 0
        self.now = 0.0
        self.desired = policies.min_capacity
        self.visible: deque[Job] = deque()
        self.workers: list[Worker] = []
        self.samples: list[dict[tuple[str, str], float]] = []
        self.cooldowns = {p.name: _Cooldown() for p in (*policies.target_tracking, *policies.steps)}
        self.last_scale_in = -math.inf
        self.interruptions = 0
        self.peak_fleet = 0
        self.open_jobs = len(self.jobs)

    # --- event queue -----------------------------------------------------------------------
    def _at(self, t: float, kind: str, payload: Any = None) -> None:
        self._seq += 1
        heapq.heappush(self.events, (t, self._seq, kind, payload))

    def run(self, max_s: float) -> Result:
        for job in self.jobs:
            self._at(job.arrival, "arrive", job)
        self._at(0.0, "tick")
        self._reconcile()
        while self.events:
            t, _, kind, payload = heapq.heappop(self.events)
            if t > max_s:
                break
            self.now = t
            if kind == "tick":
                self._tick()
                self._at(t + TICK_S, "tick")
            else:
                getattr(self, f"_on_{kind}")(payload)
            if not self.open_jobs and all(w.state == "gone" for w in self.workers):
                break  # every job ended and the fleet is back to zero: the scale-in tail is counted
        return self._result()

    # --- jobs and workers ------------------------------------------------------------------
    def _on_arrive(self, job: Job) -> None:
        self.visible.append(job)
        self._dispatch()

    def _dispatch(self) -> None:
        idle = [w for w in self.workers if w.state == "idle"]
        while self.visible and idle:
            job = self.visible.popleft()
            if job.receives >= self.f.max_receive_count:
                job.dlq, job.end = True, self.now
                self.open_jobs -= 1
                continue
            job.receives += 1
            w = idle.pop()
            w.state, w.job = "busy", job
            self._start_stage(w)

    def _start_stage(self, w: Worker) -> None:
        w.stage_started = self.now
        w.gen += 1
        self._at(self.now + self.stages_s[w.job.stage], "stage_done", (w, w.gen))

    def _on_stage_done(self, payload: tuple[Worker, int]) -> None:
        w, gen = payload
        if gen != w.gen or w.state != "busy":
            return
        job = w.job
        w.work_s += self.now - w.stage_started
        job.stage += 1
        if job.stage < len(self.stages_s):
            self._start_stage(w)
            return
        job.end = self.now
        self.open_jobs -= 1
        w.job, w.state = None, "idle"
        if sum(1 for x in self.workers if x.has_task) > self.desired:
            self._stop_task(w)  # its protection ended with the job
        self._dispatch()

    def _launch(self) -> None:
        spot = self.rng_spot.random() < self.f.spot_fraction
        w = Worker(launched=self.now, spot=spot)
        self.workers.append(w)
        boot = self.f.provision_delay_s + self.rng_boot.uniform(self.f.boot_min_s, self.f.boot_max_s)
        self._at(self.now + boot, "booted", (w, w.gen))
        if spot and self.f.spot_interruptions_per_hour > 0:
            self._at(self.now + self.rng_spot.expovariate(self.f.spot_interruptions_per_hour / 3600), "interrupt", w)
        alive = sum(1 for x in self.workers if x.state != "gone")
        self.peak_fleet = max(self.peak_fleet, alive)

    def _on_booted(self, payload: tuple[Worker, int]) -> None:
        w, _ = payload
        if w.state == "gone":
            return
        w.ready = self.now
        if w.has_task:
            w.state = "idle"
            self._dispatch()
        else:
            self._empty(w)

    def _on_started(self, payload: tuple[Worker, int]) -> None:
        w, gen = payload
        if gen == w.gen and w.state == "starting":
            w.state = "idle"
            self._dispatch()

    def _empty(self, w: Worker) -> None:
        w.state, w.has_task = "empty", False
        w.gen += 1
        self._at(self.now + self.f.instance_linger_s, "linger_end", (w, w.gen))

    def _on_linger_end(self, payload: tuple[Worker, int]) -> None:
        w, gen = payload
        if gen == w.gen and w.state == "empty":
            w.state, w.gone_at = "gone", self.now

    def _on_interrupt(self, w: Worker) -> None:
        if w.state == "gone":
            return
        self.interruptions += 1
        if w.state == "busy":
            w.work_s += self.now - w.stage_started  # the stage in progress is lost
            job = w.job
            if not self.f.handback_spends_receive:
                job.receives -= 1
            self.visible.appendleft(job)
        w.state, w.gone_at, w.job, w.has_task = "gone", self.now, None, False
        w.gen += 1
        self._reconcile()
        self._dispatch()

    def _stop_task(self, w: Worker) -> None:
        if w.state == "booting":
            w.has_task = False  # the instance still comes up, then lingers empty
        else:
            self._empty(w)

    def _reconcile(self) -> None:
        """The ECS service scheduler: as many tasks as desired, busy ones protected."""
        live = [w for w in self.workers if w.has_task]
        need = self.desired - len(live)
        if need > 0:
            # An instance without a task (booting or empty) takes a new task before one launches.
            booting = [w for w in self.workers if w.state == "booting" and not w.has_task]
            spare = [w for w in self.workers if w.state == "empty"]
            for _ in range(need):
                if booting:
                    booting.pop().has_task = True
                elif spare:
                    w = spare.pop()
                    w.state, w.has_task = "starting", True
                    w.gen += 1
                    self._at(self.now + self.f.task_start_s, "started", (w, w.gen))
                else:
                    self._launch()
        elif need < 0:
            order = {"booting": 0, "starting": 1, "idle": 2}
            for w in sorted((w for w in live if w.state in order), key=lambda w: order[w.state])[:-need]:
                self._stop_task(w)

    # --- metrics and policies --------------------------------------------------------------
    def _tick(self) -> None:
        busy = sum(1 for w in self.workers if w.state == "busy")
        self.samples.append({
            VISIBLE: float(len(self.visible)), IN_FLIGHT: float(busy), DESIRED: float(self.desired),
            RUNNING: float(sum(1 for w in self.workers if w.has_task and w.state in ("idle", "busy"))),
            PENDING: float(sum(1 for w in self.workers if w.has_task and w.state in ("booting", "starting"))),
        })
        seen = self.samples[:max(0, len(self.samples) - self.f.metric_lag_min)]
        if not seen:
            return
        before = self.desired
        for tt in self.p.target_tracking:
            series = [tt.metric.value(s) for s in seen[-TT_LOW_DATAPOINTS:]]
            m = series[-1]
            high = series[-TT_HIGH_DATAPOINTS:]
            if len(high) == TT_HIGH_DATAPOINTS and all(v is not None and v > tt.target for v in high):
                cd = self.cooldowns[tt.name]
                base = cd.base if self.now < cd.until else self.desired
                new = math.ceil(base * m / tt.target - 1e-9)
                if new > self.desired:
                    if self.now >= cd.until:
                        cd.base, cd.until = self.desired, self.now + tt.scale_out_cooldown_s
                    self._set(new)
            elif (not tt.disable_scale_in and len(series) == TT_LOW_DATAPOINTS
                  and all(v is not None and v < TT_LOW_FRACTION * tt.target for v in series)
                  and self.now >= self.last_scale_in + tt.scale_in_cooldown_s):
                new = math.ceil(self.desired * m / tt.target - 1e-9)
                if new < self.desired:
                    self._set(new)
                    self.last_scale_in = self.now
        for step in self.p.steps:
            self._step(step, seen)
        if self.desired != before:
            self._reconcile()
            self._dispatch()

    def _step(self, step: StepPolicy, seen: list[dict[tuple[str, str], float]]) -> None:
        window = [step.metric.value(s) for s in seen[-step.evaluation_periods:]]
        breaching = sum(1 for v in window if v is not None and _COMPARE[step.comparison](v, step.threshold))
        if breaching < step.datapoints_to_alarm:
            return
        x = window[-1] - step.threshold
        adj = next((s.adjustment for s in step.steps if s.lower <= x < s.upper), None)
        if adj is None:
            return
        cd = self.cooldowns[step.name]
        if step.adjustment_type == "ExactCapacity":
            self._set(int(adj))
        elif step.adjustment_type == "ChangeInCapacity":
            if self.now < cd.until:
                if cd.base + adj > self.desired:
                    self._set(int(cd.base + adj))
            else:
                cd.base, cd.until = self.desired, self.now + step.cooldown_s
                self._set(int(self.desired + adj))
        else:
            raise ValueError(f"adjustment type {step.adjustment_type} is not simulated")

    def _set(self, desired: int) -> None:
        self.desired = min(self.p.max_capacity, max(self.p.min_capacity, desired))

    # --- figures ---------------------------------------------------------------------------
    def _result(self) -> Result:
        end = self.now
        boot = idle = work = 0.0
        for w in self.workers:
            stop = w.gone_at if w.gone_at is not None else end
            life = stop - w.launched
            b = (w.ready - w.launched) if w.ready is not None and w.ready <= stop else life
            if w.state == "busy":
                w.work_s += end - w.stage_started
            boot, work = boot + b, work + w.work_s
            idle += max(0.0, life - b - w.work_s)
        done = [j.end - j.arrival for j in self.jobs if j.end is not None and not j.dlq]
        return Result(latencies_s=done, dlq=sum(j.dlq for j in self.jobs),
                      unfinished=sum(1 for j in self.jobs if j.end is None), interruptions=self.interruptions,
                      peak_fleet=self.peak_fleet, work_s=work, boot_s=boot, idle_s=idle, jobs=len(self.jobs))
