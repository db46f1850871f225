"""What every piece of a worker's work shares: its settings, adapters, engine, log and metrics, the
queue side of a delivery, the count of AWS retries, and the engine's measured speed. Built once per
worker (handler.build_runtime) and handed to the whole-file, fan-out and completion code alike."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from aws_lambda_powertools import Logger

from whisperq.aws.blobs import Blobs
from whisperq.aws.chunks import ChunksTable
from whisperq.aws.job_leases import JobLeases
from whisperq.aws.jobs_table import JobsTable
from whisperq.aws.last_calls import LastCalls
from whisperq.aws.queues import Queue
from whisperq.config import Settings
from whisperq.core.errors import WhisperqError
from whisperq.core.jobs import iso, utc_now
from whisperq.faults import Injector
from whisperq.tracing import Log
from whisperq.transcriber.diarizers import Diarizer, load_diarizer
from whisperq.transcriber.engines import Engine
from whisperq.transcriber.messages import Delivery

# Until a worker has timed its engine, how many seconds one second of audio takes, by model family:
# pessimistic on purpose (on these 2-core machines, one thread, beam 5: tiny.en took about 0.045 and base
# about 0.075: docs/benchmarks/models.md), so that a fresh worker cuts a file it is unsure of rather than
# start what its invocation cannot finish.
PRIOR_S_PER_AUDIO_S = {"tiny": 0.1, "base": 0.2, "small": 0.5, "medium": 1.5, "large": 3.0}
UNKNOWN_MODEL_S_PER_AUDIO_S = 3.0


class Metrics(Protocol):
    def add_metric(self, name: str, unit: str, value: float) -> None: ...


class NoMetrics:
    def add_metric(self, name: str, unit: str, value: float) -> None:
        pass


class QueueOps:
    """The queue side of a delivery: its message's visibility, the queue it came from, the idle workers."""

    def __init__(self, queue_by_arn: Callable[[str], Queue] | None, log: Log):
        self._queue = queue_by_arn
        self._log = log

    def extend(self, delivery: Delivery, seconds: int) -> None:
        """Hide the delivered message for `seconds` more (the heartbeat of a long attempt)."""
        if self._queue and delivery.receipt_handle and delivery.queue_arn:
            self._queue(delivery.queue_arn).change_visibility_by_handle(delivery.receipt_handle, seconds)

    def return_after(self, delivery: Delivery, seconds: float) -> None:
        """Best effort: make the message visible again just after `seconds`."""
        try:
            self.extend(delivery, min(43_200, int(seconds) + 1))
        except WhisperqError as exc:
            self._log.warning("could not delay the message", extra={"error": str(exc)})

    def can_send(self, delivery: Delivery) -> bool:
        return self._queue is not None and delivery.queue_arn is not None

    def send(self, delivery: Delivery, bodies: list[str]) -> None:
        """Send messages to the queue the delivery came from."""
        assert self._queue is not None and delivery.queue_arn is not None
        self._queue(delivery.queue_arn).send_batch(bodies)

    def idle_workers(self, delivery: Delivery, max_concurrency: int) -> int | None:
        """Workers that would wait for work besides this one: the concurrency cap less a worker for each
        message in flight (this one's included) and each waiting; None when the queue cannot be read.
        A batch may hold several of those messages: counting each as a worker errs toward not cutting.
        A message hidden by a worker that died counts until its visibility timeout runs out."""
        if not self.can_send(delivery):
            return None
        try:
            depth = self._queue(delivery.queue_arn).depth()  # type: ignore[misc, arg-type]
        except WhisperqError as exc:
            self._log.warning("could not read the queue's depth", extra={"error": str(exc)})
            return None
        return max(0, max_concurrency - max(1, depth["in_flight"]) - depth["visible"])


class SpeedMeter:
    """The engine's speed on this worker, in seconds of transcription per second of audio: a prior
    until it has timed a transcription, then at once slower when the engine is, and halfway faster
    each time it is faster."""

    def __init__(self, prior_s_per_audio_s: float):
        self.s_per_audio_s = prior_s_per_audio_s
        self._lock = threading.Lock()

    @classmethod
    def for_engine(cls, engine: Engine) -> SpeedMeter:
        own = getattr(engine, "seconds_per_audio_second", None)  # the synthetic engine says its own
        if own is not None:
            return cls(float(own))
        name = engine.model_name.rsplit("/", 1)[-1].lower()
        family = next((family for family in PRIOR_S_PER_AUDIO_S if family in name), None)
        return cls(PRIOR_S_PER_AUDIO_S[family] if family else UNKNOWN_MODEL_S_PER_AUDIO_S)

    def record(self, audio_s: float, transcribe_s: float) -> None:
        if audio_s < 1.0:
            return  # too short to say anything about the engine's speed
        observed = transcribe_s / audio_s
        with self._lock:
            if observed >= self.s_per_audio_s:
                self.s_per_audio_s = observed
            else:
                self.s_per_audio_s = (self.s_per_audio_s + observed) / 2

    def expected_s(self, audio_s: float) -> float:
        """How long transcribing `audio_s` seconds of audio should take here."""
        return audio_s * self.s_per_audio_s


class RetryCounter:
    """Retries of AWS calls in this worker, counted by the adapters' retry policy."""

    def __init__(self) -> None:
        self.count = 0

    def note(self) -> None:
        self.count += 1


def _no_callbacks_queue() -> Queue:
    raise WhisperqError("this worker has no callbacks queue")


class WorkerContext:
    """One worker's settings, adapters and engine (see the module docstring)."""

    def __init__(self, settings: Settings, jobs: JobsTable, chunks: ChunksTable, blobs: Blobs, engine: Engine,
                 log: Logger, metrics: Metrics | None = None, queue_by_arn: Callable[[str], Queue] | None = None,
                 faults: Injector | None = None, retries: RetryCounter | None = None,
                 callbacks_queue: Callable[[], Queue] | None = None):
        self.settings = settings
        self.jobs = jobs
        self.leases = JobLeases(jobs)
        self.chunks = chunks
        self.last_calls = LastCalls(jobs, chunks.table_name, chunks.retention_s)
        self.blobs = blobs
        self.engine = engine
        self.log = log
        self.metrics: Metrics = metrics or NoMetrics()
        self.queue = QueueOps(queue_by_arn, log)
        self.faults = faults  # chaos runs only (WHISPERQ_FAULTS)
        self.retries = retries or RetryCounter()
        self.speed = SpeedMeter.for_engine(engine)
        # Where a final job's callback goes to its sender (transcriber/callbacks.py); never sent from here.
        self.callbacks_queue = callbacks_queue or _no_callbacks_queue
        # When this worker's model was ready (the engine is loaded before the context is built).
        self.model_ready_at = iso(utc_now())
        self._cold = True  # until this worker finished its first job
        self._diarizer: Diarizer | None = None

    @property
    def diarizer(self) -> Diarizer:
        """The speaker encoder, loaded on this worker's first diarized job (most workers never need it)."""
        if self._diarizer is None:
            self._diarizer = load_diarizer()
        return self._diarizer

    @property
    def lease_s(self) -> int:
        """How long a lease lasts: as long as the message stays hidden."""
        return self.settings.queue.visibility_timeout_s

    @property
    def heartbeat_s(self) -> float:
        # A third of the lease, so that two beats can fail before the lease runs out.
        return max(1.0, self.lease_s / 3)

    def notes(self, job_id: str, **more: Any) -> dict[str, Any]:
        """The annotations of this job's trace subsegments."""
        return {"jobId": job_id, "engine": self.engine.name, "model": self.engine.model_name, **more}

    def take_cold_start(self) -> bool:
        """True for this worker's first finished job (its cold start), False after."""
        cold, self._cold = self._cold, False
        return cold
