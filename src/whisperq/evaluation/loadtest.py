"""A load test: submit N jobs through the real path (API, pre-signed upload, S3 event, SQS) or
straight to S3, wait for all of them to end or a timeout, and record every job's timeline and the
queue's depth over time. Bounded in jobs and time; it stops by itself."""

from __future__ import annotations

import contextlib
import io
import json
import math
import random
import statistics
import threading
import time
import wave
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from whisperq.aws.blobs import Blobs
from whisperq.aws.job_items import job_attributes
from whisperq.aws.jobs_table import JobsTable
from whisperq.aws.queues import Queue
from whisperq.aws.traces import Traces
from whisperq.client import Client
from whisperq.config import Settings
from whisperq.core.audio import content_type_for
from whisperq.core.jobs import Job, JobStatus, iso, new_job_id, parse_iso, utc_now
from whisperq.core.keys import audio_key
from whisperq.core.tiers import tier_id
from whisperq.evaluation.probe import Probe, percentile
from whisperq.evaluation.probe import summary as probe_summary

MAX_JOBS = 10_000
OBSERVER_SHARE = 0.05  # at most this share of the run's time spent following the jobs
MEMORY_SAMPLE_INTERVAL_S = 0.25


def tone_wav(seconds: float, sample_rate: int = 16_000) -> bytes:
    """A WAV of a quiet 440 Hz tone: audio of a known length for the synthetic engine."""
    samples = np.arange(int(seconds * sample_rate), dtype=np.float32) / sample_rate
    pcm = (0.1 * np.sin(2 * np.pi * 440 * samples) * 32767).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


@dataclass(frozen=True)
class LoadSpec:
    jobs: int
    rate_per_s: float | None = None  # None: a burst, as fast as the uploaders go
    audio: tuple[str, ...] = ()
    synthetic_seconds: float | None = None
    direct: bool = False
    timeout_s: float = 600.0
    uploaders: int = 8
    sample_interval_s: float = 1.0
    probe_per_s: float = 0.2  # control-plane latency: rounds of GET /jobs/{id} and POST /jobs a second; 0: off

    def validate(self) -> LoadSpec:
        if not 1 <= self.jobs <= MAX_JOBS:
            raise ValueError(f"jobs must be 1..{MAX_JOBS}")
        if bool(self.audio) == (self.synthetic_seconds is not None):
            raise ValueError("give audio files or synthetic seconds, not both or neither")
        if self.rate_per_s is not None and self.rate_per_s <= 0:
            raise ValueError("rate must be positive")
        if not 0 <= self.probe_per_s <= 50:
            raise ValueError("the probe's rate must be 0 (off) to 50 a second")
        return self


@dataclass
class JobRecord:
    job_id: str
    file: str
    submitted_at: float
    uploaded_at: float | None = None
    status: str = "UPLOADING"
    details: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    error: str | None = None
    kind: str = "audio"  # chaos runs: "poison" or "corrupt" uploads are meant to fail
    history: list[str] = field(default_factory=list)  # the statuses seen, in order, each once


class LoadTest:
    """Runs one load test against one pipeline (a twin or a deployed stack)."""

    def __init__(self, spec: LoadSpec, out_dir: Path, api: Client | None, jobs: JobsTable, blobs: Blobs,
                 queue: Queue, dlq: Queue, config: dict[str, Any], log: Any = None, owner: str = "loadtest",
                 traces: Traces | None = None, trace_filter: str | None = None, faults: Any = None,
                 memory: Callable[[], dict[str, float]] | None = None, tier: str = tier_id(Settings.model)):
        self.spec = spec.validate()
        self.tier = tier  # direct jobs: the tier whose prefix their audio is put under
        # Whose jobs these are in the owner index: the API key's id, or "loadtest" for direct jobs.
        self.owner = "loadtest" if spec.direct else owner
        self.out_dir = out_dir
        self.api = api
        self.jobs = jobs
        self.blobs = blobs
        self.queue = queue
        self.dlq = dlq
        self.config = config
        self.log = log or (lambda message: None)
        # Where traces are read back (X-Ray), and a filter expression for AWS's X-Ray.
        self.traces = traces
        self.trace_filter = trace_filter
        self.trace_rows: list[dict[str, Any]] = []
        # A chaos run's whisperq.faults.FaultSpec: its poison and corrupt shares pick uploads.
        self.faults = faults
        self._chooser = random.Random(getattr(faults, "seed", None))
        # A twin's process tree, MiB by part (Twin.memory_mib), sampled through the run; its peak.
        self.memory = memory
        self.peak_memory: dict[str, float] | None = None
        self.memory_before: dict[str, float] | None = None
        self.memory_after: dict[str, float] | None = None
        self.records: list[JobRecord] = []
        self.samples: list[dict[str, Any]] = []
        self.probe_rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._payloads = self._load_payloads()

    def _load_payloads(self) -> list[tuple[str, bytes]]:
        if self.spec.synthetic_seconds is not None:
            return [(f"tone-{self.spec.synthetic_seconds:g}s.wav", tone_wav(self.spec.synthetic_seconds))]
        return [(Path(p).name, Path(p).read_bytes()) for p in self.spec.audio]

    # --- submitting ------------------------------------------------------------------
    def _payload(self, index: int) -> tuple[str, bytes, str]:
        """The file for submission `index`: the next payload, or in a chaos run maybe a poison one
        (named so that the transcriber's poison fault fires) or a corrupt one (cut short, then garbage)."""
        name, data = self._payloads[index % len(self._payloads)]
        if self.faults is not None:
            from whisperq.faults import POISON_MARK

            draw = self._chooser.random()
            if draw < self.faults.poison:
                return f"{POISON_MARK}-{index}-{name}", data, "poison"
            if draw < self.faults.poison + self.faults.corrupt:
                # Cut off inside the container's header, or garbage from the first byte: not audio.
                # (Garbage after an intact WAV header would be valid audio: noise.)
                if self._chooser.random() < 0.5:
                    return f"corrupt-{index}-{name}", data[:20], "corrupt"
                return f"corrupt-{index}-{name}", self._chooser.randbytes(4096), "corrupt"
        return name, data, "audio"

    def _submit(self, index: int, payload: tuple[str, bytes, str]) -> None:
        name, data, kind = payload
        content_type = content_type_for(name)
        submitted = time.time()
        if self.spec.direct:
            job_id = new_job_id()
            now = iso(utc_now())
            key = audio_key(job_id, name, self.tier)
            self.jobs.create(Job(job_id, JobStatus.UPLOADING, name, content_type, key, now, now,
                                 owner=self.owner, expires_at=int(time.time()) + 86400))
            record = JobRecord(job_id, name, submitted, kind=kind)
            self.blobs.put_bytes(key, data, content_type)
        else:
            assert self.api is not None
            created = self.api.create_upload(name, content_type, size_bytes=len(data))
            record = JobRecord(created["jobId"], name, submitted, kind=kind)
            self.api.upload_bytes(created, data)
        record.uploaded_at = time.time()
        with self._lock:
            self.records.append(record)

    def _sample(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                depth = self.queue.depth()
                dead = self.dlq.depth()["visible"]
                self.samples.append({"t": time.time(), **depth, "dlq": dead})
            except Exception as exc:  # noqa: BLE001 - a missed sample is not worth stopping the test
                self.log(f"sample failed: {exc}")
            stop.wait(self.spec.sample_interval_s)

    def _sample_memory(self, stop: threading.Event) -> None:
        """The twin's resident set, more often than the queue (a worker's peak is brief)."""
        assert self.memory is not None
        while not stop.is_set():
            usage = self.memory()
            if self.peak_memory is None or usage["total"] > self.peak_memory["total"]:
                self.peak_memory = usage
            stop.wait(MEMORY_SAMPLE_INTERVAL_S)

    # --- running ---------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.memory_before = self.memory() if self.memory is not None else None
        started = time.time()
        stop_sampling = threading.Event()
        samplers = [threading.Thread(target=self._sample, args=(stop_sampling,), daemon=True)]
        if self.memory is not None:
            samplers.append(threading.Thread(target=self._sample_memory, args=(stop_sampling,), daemon=True))
        for sampler in samplers:
            sampler.start()
        try:
            with self._probe():
                self._submit_all(started)
                self._wait(started)
        finally:
            stop_sampling.set()
            for sampler in samplers:
                sampler.join(timeout=5)
        self.memory_after = self.memory() if self.memory is not None else None
        self._read_traces(started)
        summary = self.summarise(started)
        self.write(summary)
        return summary

    def _probe(self) -> Any:
        """Control-plane latency for the whole run, when there is an API to time and it is wanted."""
        if self.api is None or not self.spec.probe_per_s:
            return contextlib.nullcontext()
        # It reads the load's jobs, or its own when the load's are not the API key's (--direct).
        probe = Probe(self.api, self.spec.probe_per_s,
                      lambda: [] if self.spec.direct else [r.job_id for r in self.records[-50:]], self.log)
        self.probe_rows = probe.rows
        return probe

    def _submit_all(self, started: float) -> None:
        with ThreadPoolExecutor(max_workers=self.spec.uploaders) as pool:
            futures = []
            for index in range(self.spec.jobs):
                if self.spec.rate_per_s:
                    delay = started + index / self.spec.rate_per_s - time.time()
                    if delay > 0:
                        time.sleep(delay)
                futures.append(pool.submit(self._submit, index, self._payload(index)))
            for future in futures:
                future.result()
        self.log(f"submitted {len(self.records)} jobs in {time.time() - started:.1f} s; waiting")

    def _wait(self, started: float) -> None:
        self.wait_for({r.job_id for r in self.records}, started + self.spec.timeout_s)

    def wait_for(self, job_ids: set[str], deadline: float) -> None:
        """Follow the jobs until each is final or the deadline passes, noting every status seen.
        Each poll is one query of the owner's open jobs (a sparse index: its cost falls as jobs
        finish) and one consistent read of each job that left it (its final record, read once);
        a poll a second, or fewer while they are costly. The observer shares the machine (and, on
        AWS, the table's capacity) with the pipeline: it must not take what the workers need."""
        pending = {r.job_id: r for r in self.records if r.job_id in job_ids}
        quiet = 0
        while pending and time.time() < deadline:
            polled = time.monotonic()
            open_jobs = self.jobs.list_open(self.owner)
            for job_id, status in open_jobs.items():
                if job_id in pending:
                    _note(pending[job_id], status.value)
            # Gone from the open index: final, or (the index lags) just created: read which.
            for job in self.jobs.get_many([job_id for job_id in pending if job_id not in open_jobs]):
                _read(pending[job.job_id], job)
                if job.status.is_final:
                    del pending[job.job_id]
            # Jobs left while the queue stays empty with nothing in flight will not move (their
            # messages are in the dead-letter queue, or never came): stop after three quiet polls.
            quiet = quiet + 1 if pending and self.queue_idle() else 0
            if pending and quiet < 3:
                # Once a second, or less often while a poll is costly (thousands of open jobs): the
                # observer's share of the time (and of the table's reads) stays under OBSERVER_SHARE.
                took = time.monotonic() - polled
                time.sleep(max(1.0, took / OBSERVER_SHARE - took))
            elif pending:
                break
        # What the unfinished ones ended as (their details too), for the summary.
        for job in self.jobs.get_many(list(pending)):
            _read(pending[job.job_id], job)
        self.log(f"{len(job_ids) - len(pending)} of {len(job_ids)} jobs ended")

    def queue_idle(self) -> bool:
        """Nothing visible, in flight or delayed: every message was deleted or dead-lettered."""
        try:
            depth = self.queue.depth()
        except Exception:  # noqa: BLE001 - unknown counts as busy
            return False
        return depth["visible"] == 0 and depth["in_flight"] == 0 and depth.get("delayed", 0) == 0

    def _read_traces(self, started: float) -> None:
        if self.traces is None:
            return
        from whisperq.evaluation.traces import collect

        completed = {r.job_id for r in self.records if r.status == JobStatus.COMPLETED.value}
        try:
            self.trace_rows = collect(self.traces, math.floor(started) - 1, math.ceil(time.time()) + 60,
                                      {r.job_id for r in self.records}, completed, self.trace_filter)
        except Exception as exc:  # noqa: BLE001 - the run's own results stand without its traces
            self.log(f"could not read traces: {exc}")
            return
        self.log(f"read {len(self.trace_rows)} traced stages of {len({r['jobId'] for r in self.trace_rows})} jobs")

    # --- results ---------------------------------------------------------------------
    def summarise(self, started: float) -> dict[str, Any]:
        summary = summarise(self.records, self.samples, started, self.config, asdict(self.spec))
        if self.traces is not None:
            summary["traces"] = trace_summary(self.trace_rows, summary["completed"])
        if self.probe_rows:
            summary["probe"] = probe_summary(self.probe_rows)
        if self.peak_memory is not None:
            # The twin's process tree (MiB by part): before the run, at its peak, once every job ended.
            summary["treeRssMiB"] = {"before": self.memory_before, "peak": self.peak_memory,
                                     "after": self.memory_after}
        return summary

    def write(self, summary: dict[str, Any]) -> None:
        """The run's files: jobs.jsonl, samples.jsonl, probe.jsonl (with the probe), traces.jsonl (with
        traces), summary.json."""
        _write_jsonl(self.out_dir / "jobs.jsonl", [job_row(record) for record in self.records])
        _write_jsonl(self.out_dir / "samples.jsonl", self.samples)
        if self.probe_rows:
            _write_jsonl(self.out_dir / "probe.jsonl", self.probe_rows)
        if self.traces is not None:
            _write_jsonl(self.out_dir / "traces.jsonl", self.trace_rows)
        (self.out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def _note(record: JobRecord, status: str) -> None:
    """A status seen for a job: its latest, and its history (each change once)."""
    record.status = status
    if not record.history or record.history[-1] != status:
        record.history.append(status)


def _read(record: JobRecord, job: Job) -> None:
    """A job's record as read from the table."""
    _note(record, job.status.value)
    record.attempts, record.error = job.attempts, job.error
    record.details = {k: v for k, v in job_attributes(job).items() if k not in ("leaseId", "transcriptKeys")}


def _ts(value: Any) -> float | None:
    return parse_iso(value).timestamp() if isinstance(value, str) and value else None


def job_row(record: JobRecord) -> dict[str, Any]:
    """One job's timeline, in epoch seconds, and its measurements."""
    d = record.details
    ended = _ts(d.get("completedAt")) or _ts(d.get("failedAt"))
    return {
        "jobId": record.job_id, "file": record.file, "status": record.status, "attempts": record.attempts,
        "error": record.error, "kind": record.kind, "history": record.history,
        "submittedAt": record.submitted_at, "uploadedAt": record.uploaded_at,
        "enqueuedAt": _ts(d.get("enqueuedAt")), "startedAt": _ts(d.get("startedAt")),
        "modelReadyAt": _ts(d.get("modelReadyAt")), "transcribedAt": _ts(d.get("transcribedAt")), "endedAt": ended,
        "latencyS": round(ended - record.uploaded_at, 3) if ended and record.uploaded_at else None,
        "uploadToStartS": (round(started - record.uploaded_at, 3)
                           if (started := _ts(d.get("startedAt"))) and record.uploaded_at else None),
        **{k: d.get(k) for k in ("queueWaitS", "downloadS", "decodeS", "transcribeS", "uploadS", "modelLoadS",
                                 "coldStart", "audioDurationS", "realTimeFactor", "retries", "engine", "model",
                                 "deadLettered", "chunks", "chunksDone")},
    }


def trace_summary(rows: list[dict[str, Any]], completed: int) -> dict[str, Any]:
    """Mean seconds per stage over the traced jobs, and how many jobs had a trace."""
    from whisperq.evaluation.traces import per_job, stage_means

    jobs = per_job(rows)
    means = {stage: round(mean, 4) if jobs else None for stage, mean in stage_means(jobs).items()}
    return {"jobsTraced": len(jobs), "completed": completed, "meanStageS": means}


def _engine_share(done: list[dict[str, Any]], workers: Any, wall: float | None) -> float | None:
    seconds = [r["transcribeS"] for r in done if r.get("transcribeS") is not None]
    if not wall or not workers or not seconds:
        return None
    return round(sum(seconds) / (workers * wall), 3)


def summarise(records: list[JobRecord], samples: list[dict[str, Any]], started: float, config: dict[str, Any],
              spec: dict[str, Any]) -> dict[str, Any]:
    rows = [job_row(r) for r in records]
    done = [r for r in rows if r["status"] == "COMPLETED"]
    ended = [r["endedAt"] for r in rows if r["endedAt"]]
    last_upload = max((r["uploadedAt"] for r in rows if r["uploadedAt"]), default=started)
    wall = (max(ended) - started) if ended else None
    audio_s = sum(r["audioDurationS"] or 0 for r in done)
    latencies = [r["latencyS"] for r in done if r["latencyS"] is not None]
    to_start = [r["uploadToStartS"] for r in rows if r["uploadToStartS"] is not None]
    return {
        "config": config,
        "spec": spec,
        "jobs": len(rows),
        "completed": len(done),
        "failed": sum(r["status"] == "FAILED" for r in rows),
        "deadLettered": sum(bool(r["deadLettered"]) for r in rows),
        "unfinished": sum(r["status"] not in ("COMPLETED", "FAILED", "CANCELLED") for r in rows),
        "wallS": round(wall, 3) if wall else None,
        "drainS": round(max(ended) - last_upload, 3) if ended else None,
        "jobsPerS": round(len(done) / wall, 3) if wall else None,
        "audioSeconds": round(audio_s, 2),
        "audioSecondsPerWallSecond": round(audio_s / wall, 3) if wall else None,
        # The share of the workers' time spent inside the engine: what the pipeline leaves to it. Unlike
        # the efficiency against a bare engine timed later, the machine's speed cancels out of it.
        "engineShare": _engine_share(done, config.get("workers"), wall),
        "latencyS": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
                     "p99": percentile(latencies, 99)},
        "uploadToStartS": {"p50": percentile(to_start, 50), "p95": percentile(to_start, 95)},
        "meanRealTimeFactor": round(statistics.fmean([r["realTimeFactor"] for r in done if r["realTimeFactor"]]), 2)
        if any(r["realTimeFactor"] for r in done) else None,
        "attempts": sum(r["attempts"] for r in rows),
        "retries": sum(r["retries"] or 0 for r in rows),
        "maxQueueDepth": max((s["visible"] for s in samples), default=0),
        "maxDlqDepth": max((s["dlq"] for s in samples), default=0),
        # Long files fanned out across workers: how many jobs, and their chunks.
        "fannedOut": sum(bool(r.get("chunks")) for r in rows),
        "chunks": sum(r.get("chunks") or 0 for r in rows),
    }
