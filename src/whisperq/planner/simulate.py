"""A discrete-event simulation of the deployed pipeline: arrivals, the SQS queue and its event source
mapping's scaling, Lambda's concurrency and cold starts, visibility timeouts, retries and the DLQ, and
the fan-out of long files into chunks. Fast enough for a day of 100,000 jobs in seconds.

The AWS behaviour modelled, as AWS documents it for standard queues: the event source mapping starts
5 concurrent batches when messages arrive and adds up to 300 per minute while a backlog remains, up to
MaximumConcurrency (and the function's reserved concurrency, and 1,250); a new execution environment
pays a cold start (here: loading the model); a failed attempt's message returns after the visibility
timeout and goes to the DLQ on its maxReceiveCount-th receive."""

from __future__ import annotations

import heapq
import math
import random
from collections import deque
from dataclasses import dataclass
from typing import Any, NamedTuple

from whisperq.core.capacity import lambda_vcpus, threads_for

ESM_START = 5
ESM_STEP_PER_S = 5.0  # 300 more per minute
ESM_MAX = 1250

ARRIVE, VISIBLE, DONE, RAMP = 0, 1, 2, 3


@dataclass(frozen=True)
class Pipeline:
    """What the simulation runs: the stack's settings and the engine's calibrated speed."""

    max_concurrency: int = 100  # the event source mapping's MaximumConcurrency
    reserved_concurrency: int | None = None
    memory_mb: int = 3008
    cpu_threads: int | None = None  # None: the engine's own rule (core/capacity.threads_for: one per whole vCPU)
    rtf_per_thread: float = 20.0  # audio seconds per second of one thread (calibrated)
    # Speed with two threads or more against one (calibrated: measured at 2 threads; held beyond, unmeasured).
    thread_speedup: float = 1.0
    overhead_s: float = 0.3  # per message: download, decode, uploads, status updates (calibrated)
    cold_start_s: float = 2.0  # a new environment: the runtime and the model load (calibrated)
    keep_warm_s: float = 600.0  # an idle environment is kept this long
    visibility_timeout_s: float = 5400.0
    max_receive_count: int = 3
    failure_rate: float = 0.0  # per attempt
    fanout_min_duration_s: float = 60.0  # 0: off (queue_config's default)
    chunk_s: float = 30.0  # the shortest chunk (queue_config's default)
    split_s_per_audio_s: float = 0.004  # decode + VAD + FLAC encoding of the whole file (calibrated)
    merge_s: float = 0.5
    diarized_share: float = 0.0  # the share of jobs that ask for speakers
    diarize_added: float = 0.0  # diarization's seconds per second of transcription (calibrated)
    ramp: bool = True  # False: every worker polls from the start (the local twin)

    @property
    def vcpus(self) -> float:
        return lambda_vcpus(self.memory_mb)

    @property
    def threads(self) -> int:
        return self.cpu_threads or threads_for(self.vcpus)

    @property
    def rtf(self) -> float:
        """Audio seconds per wall second of one environment: its threads' measured speed, in the share of a
        vCPU each thread gets (under 1,769 MB, a fraction of one)."""
        speed = self.rtf_per_thread * (1.0 if self.threads == 1 else self.thread_speedup)
        return speed * min(1.0, self.vcpus / self.threads)

    @property
    def work_rtf(self) -> float:
        """Audio seconds per wall second with diarization's share of the work counted in."""
        return self.rtf / (1.0 + self.diarized_share * self.diarize_added)

    @property
    def cap(self) -> int:
        caps = [self.max_concurrency, ESM_MAX]
        if self.reserved_concurrency is not None:
            caps.append(self.reserved_concurrency)
        return min(caps)


@dataclass
class Outcome:
    jobs: int
    completed: int
    dead_lettered: int
    drain_s: float  # first arrival to last completion
    latencies: list[float]
    peak_concurrency: int
    cold_starts: int
    attempts: int
    messages: int
    chunks: int
    fanned_out: int
    busy_s: float  # environment seconds billed (cold starts included)
    audio_s: float

    def latency(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass
class _Job:
    arrival: float
    duration_s: float
    chunks_left: int = 0  # set when a worker splits the job
    chunk_s: float = 0.0  # and how long each of its chunks is
    split: bool = False
    failed: bool = False


# A message on the queue: the job, its chunk (-1: the whole file), and how often it was received.
_Message = tuple["_Job", int, int]


class _Attempt(NamedTuple):
    """One invocation's work on a message: when it was received, and whether it will succeed."""

    job: _Job
    chunk: int
    receives: int
    received_at: float
    ok: bool


class _Simulation:
    """The event loop of `simulate`: a heap of timed events, the visible messages, the environments."""

    def __init__(self, arrivals: list[tuple[float, float]], pipeline: Pipeline, seed: int):
        self.pipeline = pipeline
        self.chooser = random.Random(seed)
        self.rtf, self.cap = pipeline.work_rtf, pipeline.cap
        self.events: list[tuple[float, int, int, Any]] = []
        self.sequence = 0
        self.visible: deque[_Message] = deque()
        self.running = 0
        self.warm: deque[float] = deque()  # idle environments by when they were last used, oldest first
        self.limit = 0.0 if pipeline.ramp else float(self.cap)  # the event source mapping's concurrency now
        self.ramping = False
        jobs = [_Job(t, d) for t, d in arrivals]
        for job in jobs:
            self.push(job.arrival, ARRIVE, job)
        self.out = Outcome(len(jobs), 0, 0, 0.0, [], 0, 0, 0, 0, 0, 0, 0.0, sum(d for _, d in arrivals))

    def push(self, at: float, kind: int, payload: Any) -> None:
        self.sequence += 1
        heapq.heappush(self.events, (at, self.sequence, kind, payload))

    def run(self) -> Outcome:
        while self.events:
            now, _, kind, payload = heapq.heappop(self.events)
            if kind == ARRIVE:
                self.out.messages += 1
                self.visible.append((payload, -1, 0))
            elif kind == VISIBLE:
                self.visible.append(payload)
            elif kind == RAMP:
                self.ramping = False
                if self.visible:
                    self.limit = min(self.cap, self.limit + ESM_STEP_PER_S)
            else:
                self.ended(payload, now)
            self.start(now)
        return self.out

    def start(self, now: float) -> None:
        """Hand visible messages to environments, as many as the event source mapping's limit allows."""
        pipeline, out = self.pipeline, self.out
        if not self.visible:
            return
        if pipeline.ramp and self.limit < ESM_START:
            self.limit = min(self.cap, ESM_START)
        while self.visible and self.running < int(self.limit):
            job, chunk, receives = self.visible.popleft()
            self.running += 1
            out.attempts += 1
            out.peak_concurrency = max(out.peak_concurrency, self.running)
            while self.warm and now - self.warm[0] > pipeline.keep_warm_s:
                self.warm.popleft()  # reclaimed by Lambda after idling
            service_s = self.work(job, chunk)
            if self.warm:
                self.warm.pop()
            else:
                service_s += pipeline.cold_start_s
                out.cold_starts += 1
            out.busy_s += service_s
            fails = bool(pipeline.failure_rate) and self.chooser.random() < pipeline.failure_rate
            took_s = service_s * self.chooser.random() if fails else service_s
            self.push(now + took_s, DONE, _Attempt(job, chunk, receives + 1, now, not fails))
        if pipeline.ramp and self.visible and not self.ramping and self.limit < self.cap:
            self.ramping = True
            self.push(now + 1.0, RAMP, None)

    def work(self, job: _Job, chunk: int) -> float:
        """Seconds an environment spends on a message: a chunk, a split, or a whole file."""
        pipeline = self.pipeline
        if chunk >= 0:
            return pipeline.overhead_s + job.chunk_s / self.rtf
        # As core.fanout decides: cut when workers would wait, into a chunk for each (this one's
        # included), none shorter than chunk_s.
        idle = pipeline.max_concurrency - self.running - len(self.visible)
        if not job.chunks_left and pipeline.fanout_min_duration_s and idle >= 1 and \
                job.duration_s >= max(pipeline.fanout_min_duration_s, 2 * pipeline.chunk_s):
            job.chunks_left = max(2, min(idle + 1, math.floor(job.duration_s / pipeline.chunk_s)))
            job.chunk_s = job.duration_s / job.chunks_left
        if job.chunks_left:  # a split (or a split an earlier attempt began: always finished, as in the worker)
            return pipeline.overhead_s + job.duration_s * pipeline.split_s_per_audio_s
        return pipeline.overhead_s + job.duration_s / self.rtf

    def ended(self, attempt: _Attempt, now: float) -> None:
        """An invocation ended: a retry or a dead letter, a split's chunks queued, a chunk or a job done."""
        pipeline, out, job = self.pipeline, self.out, attempt.job
        self.running -= 1
        self.warm.append(now)
        if not attempt.ok:
            if attempt.receives >= pipeline.max_receive_count:
                out.dead_lettered += 1
                job.failed = True
            else:
                self.push(max(now, attempt.received_at + pipeline.visibility_timeout_s), VISIBLE,
                          (job, attempt.chunk, attempt.receives))
        elif attempt.chunk < 0 and job.chunks_left and not job.split:
            job.split = True  # the split's chunks, one message each, behind what waits already
            out.fanned_out += 1
            out.chunks += job.chunks_left
            out.messages += job.chunks_left
            self.visible.extend((job, index, 0) for index in range(job.chunks_left))
        elif attempt.chunk >= 0:
            job.chunks_left -= 1
            if job.chunks_left == 0 and not job.failed:
                out.busy_s += pipeline.merge_s
                finish(job, now + pipeline.merge_s, out)
        elif not job.failed and not job.split:
            finish(job, now, out)


def simulate(arrivals: list[tuple[float, float]], pipeline: Pipeline, seed: int = 1) -> Outcome:
    """`arrivals`: (time s, audio duration s) per job. Every job is followed to its end."""
    out = _Simulation(arrivals, pipeline, seed).run()
    first = min((t for t, _ in arrivals), default=0.0)
    out.drain_s = max(0.0, out.drain_s - first) if out.completed else 0.0
    return out


def finish(job: _Job, at: float, out: Outcome) -> None:
    out.completed += 1
    out.latencies.append(at - job.arrival)
    out.drain_s = max(out.drain_s, at)  # absolute until the end of the run
