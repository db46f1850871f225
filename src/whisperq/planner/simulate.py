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
from dataclasses import dataclass, field
from typing import Any

LAMBDA_VCPU_MB = 1769.0  # Lambda gives one vCPU per 1,769 MB, up to 6 vCPUs at 10,240 MB
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
    cpu_threads: int | None = None  # None: one per whole vCPU
    rtf_per_thread: float = 20.0  # audio seconds per second of one thread (calibrated)
    thread_scaling: float = 0.8  # speed-up from n threads: n ** thread_scaling (an assumption)
    overhead_s: float = 0.3  # per message: download, decode, uploads, status updates (calibrated)
    cold_start_s: float = 2.0  # a new environment: the runtime and the model load (calibrated)
    keep_warm_s: float = 600.0  # an idle environment is kept this long
    visibility_timeout_s: float = 5400.0
    max_receive_count: int = 3
    failure_rate: float = 0.0  # per attempt
    fanout_min_duration_s: float = 300.0  # 0: off
    chunk_s: float = 60.0
    split_s_per_audio_s: float = 0.004  # decode + VAD + FLAC encoding of the whole file (calibrated)
    merge_s: float = 0.5
    ramp: bool = True  # False: every worker polls from the start (the local twin)

    @property
    def vcpus(self) -> float:
        return min(6.0, self.memory_mb / LAMBDA_VCPU_MB)

    @property
    def rtf(self) -> float:
        """Audio seconds per wall second of one environment."""
        if self.vcpus < 1:
            return self.rtf_per_thread * self.vcpus
        threads = self.cpu_threads or max(1, int(self.vcpus))
        return self.rtf_per_thread * min(threads, self.vcpus) ** self.thread_scaling

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
    split: bool = False
    failed: bool = False


@dataclass
class _State:
    queue: deque = field(default_factory=deque)  # visible messages: (job, chunk index or -1, receives)
    running: int = 0
    warm: deque = field(default_factory=deque)  # idle environments by when they were last used, oldest first
    limit: float = 0.0


def simulate(arrivals: list[tuple[float, float]], pipeline: Pipeline, seed: int = 1) -> Outcome:
    """`arrivals`: (time s, audio duration s) per job. Every job is followed to its end."""
    chooser = random.Random(seed)
    p = pipeline
    rtf, cap = p.rtf, p.cap
    events: list[tuple[float, int, int, Any]] = []
    seq = 0

    def push(t: float, kind: int, payload: Any) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, seq, kind, payload))

    jobs = [_Job(t, d) for t, d in arrivals]
    for job in jobs:
        push(job.arrival, ARRIVE, job)
    s = _State(limit=0.0 if p.ramp else float(cap))
    out = Outcome(len(jobs), 0, 0, 0.0, [], 0, 0, 0, 0, 0, 0, 0.0, sum(d for _, d in arrivals))
    first = min((t for t, _ in arrivals), default=0.0)
    ramping = False

    queue, warm = s.queue, s.warm
    keep_warm_s, cold_start_s, failure_rate, ramp = p.keep_warm_s, p.cold_start_s, p.failure_rate, p.ramp
    heappush = heapq.heappush

    def start(now: float) -> None:
        nonlocal ramping, seq
        if not queue:
            return
        if ramp and s.limit < ESM_START:
            s.limit = min(cap, ESM_START)
        limit = int(s.limit)
        while queue and s.running < limit:
            job, chunk, receives = queue.popleft()
            s.running += 1
            out.attempts += 1
            if s.running > out.peak_concurrency:
                out.peak_concurrency = s.running
            while warm and now - warm[0] > keep_warm_s:
                warm.popleft()  # reclaimed by Lambda after idling
            if warm:
                warm.pop()
                service = work(job, chunk)
            else:
                service = cold_start_s + work(job, chunk)
                out.cold_starts += 1
            out.busy_s += service
            seq += 1
            if failure_rate and chooser.random() < failure_rate:
                heappush(events, (now + service * chooser.random(), seq, DONE, (job, chunk, receives + 1, now, False)))
            else:
                heappush(events, (now + service, seq, DONE, (job, chunk, receives + 1, now, True)))
        if ramp and queue and not ramping and s.limit < cap:
            ramping = True
            push(now + 1.0, RAMP, None)

    def work(job: _Job, chunk: int) -> float:
        if chunk >= 0:
            length = min(p.chunk_s, job.duration_s - chunk * p.chunk_s)
            return p.overhead_s + length / rtf
        if not job.chunks_left and p.fanout_min_duration_s and job.duration_s > p.fanout_min_duration_s \
                and len(queue) < p.max_concurrency:
            job.chunks_left = math.ceil(job.duration_s / p.chunk_s)
        if job.chunks_left:  # a split (or a split an earlier attempt began: always finished, as in the worker)
            return p.overhead_s + job.duration_s * p.split_s_per_audio_s
        return p.overhead_s + job.duration_s / rtf

    while events:
        now, _, kind, payload = heapq.heappop(events)
        if kind == ARRIVE:
            out.messages += 1
            queue.append((payload, -1, 0))
        elif kind == VISIBLE:
            queue.append(payload)
        elif kind == RAMP:
            ramping = False
            if queue:
                s.limit = min(cap, s.limit + ESM_STEP_PER_S)
        else:
            job, chunk, receives, received_at, ok = payload
            s.running -= 1
            warm.append(now)
            if not ok:
                if receives >= p.max_receive_count:
                    out.dead_lettered += 1
                    job.failed = True
                else:
                    push(max(now, received_at + p.visibility_timeout_s), VISIBLE, (job, chunk, receives))
            elif chunk < 0 and job.chunks_left and not job.split:
                job.split = True  # the split's chunks, one message each, behind what waits already
                out.fanned_out += 1
                out.chunks += job.chunks_left
                out.messages += job.chunks_left
                for index in range(job.chunks_left):
                    queue.append((job, index, 0))
            elif chunk >= 0:
                job.chunks_left -= 1
                if job.chunks_left == 0 and not job.failed:
                    out.busy_s += p.merge_s
                    finish(job, now + p.merge_s, out)
            elif not job.failed and not job.split:
                finish(job, now, out)
        start(now)
    out.drain_s = max(0.0, out.drain_s - first) if out.completed else 0.0
    return out


def finish(job: _Job, at: float, out: Outcome) -> None:
    out.completed += 1
    out.latencies.append(at - job.arrival)
    out.drain_s = max(out.drain_s, at)  # absolute until the end of the run
