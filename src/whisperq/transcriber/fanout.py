"""Fan-out: one long file cut at pauses into chunks that every worker can take, merged back by the
worker that finishes the last one.

- Split: the worker that takes a long job decodes it once, cuts it (core.fanout.plan_chunks on the
  Silero VAD's speech regions), writes each chunk as FLAC under chunks/<jobId>/, records the plan on
  the job under its lease, sends one message per chunk to the queue the job came from, then gives
  up the job's lease: from there the chunk messages carry the job.
- Chunk: any worker leases the chunk (aws.chunks), transcribes it with the job's options, writes
  its segments with the chunk's offset added, and counts it done in one conditional update.
- Merge: the update that brings the count to the total says who merges; that worker takes the
  job's lease, merges the chunks in order into the five formats and ends the job COMPLETED.
Every step is safe to repeat: a duplicate, a retry or a redelivery after a crash finds what is
done and does only what is not.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from whisperq.aws.chunks import ChunkLedger, ChunkNotTaken, done_attr, message_attr, until_attr
from whisperq.core.errors import InvalidTransition, JobNotFound, PermanentJobError, TransientError, WhisperqError
from whisperq.core.fanout import Chunk, ChunkMessage, merge, plan_chunks, shift
from whisperq.core.jobs import Job, JobStatus, iso, utc_now
from whisperq.core.keys import chunk_audio_key, chunk_keys, chunk_result_key
from whisperq.core.options import TranscribeOptions
from whisperq.core.transcript import Transcript
from whisperq.tracing import stage
from whisperq.transcriber import audio, work
from whisperq.transcriber.heartbeat import Heartbeat
from whisperq.transcriber.messages import Delivery, LeaseLost

if TYPE_CHECKING:
    from whisperq.transcriber.service import SendMessages, Transcriber


class ChunkLeaseStillHeld(TransientError):
    """A chunk's own message came back while an earlier attempt's lease is live: retry later."""


class FanOut:
    def __init__(self, transcriber: Transcriber, send_messages: SendMessages | None,
                 backlog: Callable[[str], int] | None = None):
        self.t = transcriber
        self.send_messages = send_messages
        self.backlog = backlog  # messages waiting in a queue (by ARN), to fan out only onto idle workers
        self.ledger = ChunkLedger(transcriber.jobs)

    # --- split ------------------------------------------------------------------------------
    def wanted(self, job: Job, fetched: work.Fetched, delivery: Delivery) -> bool:
        """Fan out this audio? When it is long, and when other workers would otherwise wait: with a
        backlog of max_concurrency messages or more, every worker is busy anyway and splitting would
        only add its own cost (a split that an earlier attempt began is always finished)."""
        if job.details.get("chunkPlan"):
            return True
        config = self.t.settings.queue
        if not config.fanout_min_duration_s or fetched.duration_s <= config.fanout_min_duration_s:
            return False
        if self.send_messages is None or delivery.queue_arn is None or work.is_silent(fetched.samples):
            return False
        if self.backlog is not None:
            try:
                waiting = self.backlog(delivery.queue_arn)
            except WhisperqError as exc:
                self.t.log.warning("could not read the queue's backlog; fanning out", extra={"error": str(exc)})
                return True
            if waiting >= config.max_concurrency:
                self.t.log.info("queue is busy; transcribing the long file whole", extra={"backlog": waiting})
                return False
        return True

    def split(self, job: Job, lease: str, delivery: Delivery, fetched: work.Fetched) -> str:
        job_id, t = job.job_id, self.t
        if delivery.queue_arn is None or self.send_messages is None:
            raise TransientError("cannot send chunk messages: the delivery names no queue")
        started = time.perf_counter()
        with stage("split", **t.notes(job_id)):
            plan = plan_chunks(fetched.duration_s, audio.speech_regions(fetched.samples), t.settings.queue.chunk_s)
            fields = {**{name: round(value, 4) for name, value in fetched.timings.items()},
                      "audioDurationS": round(fetched.duration_s, 3)}
            try:
                self.ledger.record_plan(job_id, lease, [chunk.to_dict() for chunk in plan], fields)
            except ChunkNotTaken as exc:
                return f"skipped:{'cancelled' if exc.job.status is JobStatus.CANCELLED else 'lease-lost'}"
            # Write and announce chunk by chunk: the first one's worker starts while the rest are cut.
            pending: list[str] = []
            for chunk in plan:
                key = chunk_audio_key(job_id, chunk.index)
                rate = audio.SAMPLE_RATE
                piece = fetched.samples[int(chunk.start_s * rate):int(chunk.end_s * rate)]
                t.blobs.put_bytes(key, audio.encode_flac(piece), "audio/flac")
                pending.append(ChunkMessage(job_id, len(plan), key, chunk).to_body())
                if len(pending) == 10 or chunk.index in (0, len(plan) - 1):
                    self.send_messages(delivery.queue_arn, pending)
                    pending = []
        try:
            done = self.ledger.mark_sent(job_id, lease, {"splitS": round(time.perf_counter() - started, 4)})
        except ChunkNotTaken as exc:
            if exc.job.status is JobStatus.CANCELLED:  # cancelled while we cut: our files go too
                t.blobs.delete(chunk_keys(job_id, len(plan)))
                return "skipped:cancelled"
            if not exc.job.details.get("chunksSentAt"):
                raise TransientError(f"job {job_id} lost its lease while its chunks were sent") from exc
            done = exc.job
        t.log.info("job fanned out", extra={"job_id": job_id, "chunks": len(plan)})
        if done.details.get("chunksDone") == len(plan):  # every chunk finished before we let go
            self.merge(done, delivery)
        return f"fanned-out:{len(plan)}"

    # --- one chunk ------------------------------------------------------------------------
    def handle_chunk(self, message: ChunkMessage, delivery: Delivery) -> str:
        self.t.log.append_keys(job_id=message.job_id, message_id=delivery.message_id, chunk=message.chunk.index)
        try:
            return self._handle_chunk(message, delivery)
        finally:
            self.t.log.remove_keys(["job_id", "message_id", "chunk"])

    def _handle_chunk(self, message: ChunkMessage, delivery: Delivery) -> str:
        t, job_id, index = self.t, message.job_id, message.chunk.index
        try:
            job = t.jobs.get(job_id)
        except JobNotFound:
            t.log.warning("ignoring a chunk of an unknown job")
            return "ignored:unknown-job"
        lease = str(uuid.uuid4())
        visibility_s = t.settings.queue.visibility_timeout_s
        if job.status in (JobStatus.COMPLETED, JobStatus.CANCELLED) or job.details.get(done_attr(index)):
            return self._not_taken(job, message, delivery)
        try:
            self.ledger.take(job_id, index, lease, visibility_s, delivery.message_id)
        except ChunkNotTaken as exc:
            return self._not_taken(exc.job, message, delivery)
        options = TranscribeOptions.from_api(job.details.get("options"), t.engine.model_name)
        if message.chunk.has_seam and not options.word_timestamps:
            options = replace(options, word_timestamps=True)  # the merge trims a hard cut word by word
        try:
            with self._heartbeat(job_id, index, lease, delivery):
                transcribe_s = self._transcribe_chunk(message, options)
            counted = self.ledger.count_done(job_id, index, lease, transcribe_s)
        except ChunkNotTaken as exc:
            if exc.job.status is JobStatus.CANCELLED:
                t.blobs.delete(chunk_keys(job_id, message.count))
                return "skipped:cancelled"
            t.log.warning("lost the chunk's lease; leaving it to the newer attempt")
            raise LeaseLost(f"{describe(message)} of job {job_id}: a newer attempt holds its lease") from exc
        except PermanentJobError as exc:
            self.fail_job(job_id, f"{describe(message)} could not be transcribed: {exc.message}")
            self.ledger.release(job_id, index, lease)
            return "failed"
        except Exception as exc:
            self._after_retryable(message, lease, delivery, exc)
            raise
        if counted.last:
            return self.merge(counted.job, delivery)
        return f"chunk-done:{index}"

    def _not_taken(self, job: Job, message: ChunkMessage, delivery: Delivery) -> str:
        """Why a chunk could not be leased, and what to do with its message."""
        index = message.chunk.index
        if job.status is JobStatus.CANCELLED:
            self.t.blobs.delete(chunk_keys(job.job_id, message.count))
            return "skipped:cancelled"
        if job.status is JobStatus.COMPLETED:
            return "skipped:COMPLETED"
        if job.details.get(done_attr(index)):
            # Done already: a duplicate, or the redelivery of a worker that died before its merge.
            if job.details.get("chunksDone") == job.details.get("chunks") and job.status is not JobStatus.FAILED:
                return self.merge(job, delivery)
            return "skipped:chunk-done"
        left_s = float(job.details.get(until_attr(index), 0)) - time.time()
        if left_s > 0 and job.details.get(message_attr(index)) not in (None, delivery.message_id):
            self.t.log.info("chunk is leased by another worker; acknowledging duplicate")
            return "skipped:chunk-leased-elsewhere"
        if left_s > 0:  # our own message is back: its holder died; hand it back until the lease ends
            self.t.return_after(delivery, left_s)
            raise ChunkLeaseStillHeld(f"{describe(message)} of job {job.job_id} is still leased for {left_s:.1f} s")
        raise TransientError(f"{describe(message)} of job {job.job_id} could not be leased (job {job.status.value})")

    def _transcribe_chunk(self, message: ChunkMessage, options: TranscribeOptions) -> float:
        t, job_id = self.t, message.job_id
        notes = {**t.notes(job_id), "chunk": message.chunk.index}
        fetched = work.fetch(t.blobs, message.key, notes)
        transcript, transcribe_s = work.transcribe(t.engine, fetched.samples, options, notes, t.faults)
        if t.faults is not None:
            t.faults.maybe_crash()  # a worker killed mid-chunk: the chunk leased, its result not written
        result = shift(transcript, message.chunk.start_s)
        with stage("upload", **notes):
            t.blobs.put_text(chunk_result_key(job_id, message.chunk.index), json.dumps(result.to_dict()),
                             "application/json")
        return transcribe_s

    def _heartbeat(self, job_id: str, index: int, lease: str, delivery: Delivery) -> Heartbeat:
        visibility_s = self.t.settings.queue.visibility_timeout_s

        def beat() -> None:
            self.t.extend_message(delivery, visibility_s)
            self.ledger.extend(job_id, index, lease, visibility_s)

        return Heartbeat(max(1.0, visibility_s / 3), beat, self.t.log)

    def _after_retryable(self, message: ChunkMessage, lease: str, delivery: Delivery, exc: Exception) -> None:
        """Let the chunk's next delivery take it at once; on the last one, end the job FAILED."""
        t, job_id = self.t, message.job_id
        reason = f"{type(exc).__name__}: {exc}"
        t.metrics.add_metric("AttemptsFailed", "Count", 1)
        t.log.exception("chunk attempt failed", extra={"receive_count": delivery.receive_count})
        try:
            max_receives = t.settings.queue.max_receive_count
            if delivery.receive_count >= max_receives:
                self.fail_job(job_id, (
                    f"{describe(message)} failed on all {max_receives} attempts; last error: {reason}. Its message "
                    f"was moved to the dead-letter queue; `whisperq dlq replay --job {job_id}` resumes the job "
                    "without redoing the finished chunks"), dead_lettered=True, chunk=message.chunk.index)
            self.ledger.release(job_id, message.chunk.index, lease)
        except WhisperqError as bookkeeping_error:
            t.log.warning("could not record the failed chunk attempt", extra={"error": str(bookkeeping_error)})

    def fail_job(self, job_id: str, reason: str, dead_lettered: bool = False, chunk: int | None = None) -> None:
        """End a fanned-out job FAILED (once; a second failing chunk finds it FAILED already)."""
        changes: dict[str, Any] = {"error": reason, "lastError": reason, "failedAt": iso(utc_now())}
        if dead_lettered:
            changes["deadLettered"] = True
        if chunk is not None:
            changes["failedChunk"] = chunk
        try:
            job = self.t.jobs.transition(job_id, JobStatus.FAILED, expected=[JobStatus.QUEUED, JobStatus.PROCESSING],
                                         changes=changes)
        except InvalidTransition:
            return
        self.t.metrics.add_metric("JobsFailed", "Count", 1)
        self.t.callback(job)

    # --- merge ------------------------------------------------------------------------------
    def merge(self, job: Job, delivery: Delivery) -> str:
        """Take the job's lease (every chunk done, no live lease) and write its merged transcript."""
        t, job_id = self.t, job.job_id
        lease, now = str(uuid.uuid4()), time.time()
        try:
            t.jobs.transition(
                job_id, JobStatus.PROCESSING, expected=[JobStatus.QUEUED, JobStatus.PROCESSING],
                changes={"leaseId": lease, "leaseExpiresAt": now + t.settings.queue.visibility_timeout_s,
                         "leaseMessageId": delivery.message_id},
                extra_condition=("#chunksDone = #chunks AND (attribute_not_exists(#leaseId) OR #leaseExpiresAt < :now)",
                                 {":now": now}),
            )
        except InvalidTransition:
            current = t.jobs.get(job_id)
            left_s = float(current.details.get("leaseExpiresAt", 0)) - time.time()
            if current.status is JobStatus.PROCESSING and left_s > 0 \
                    and current.details.get("leaseMessageId") == delivery.message_id:
                t.return_after(delivery, left_s)
                raise ChunkLeaseStillHeld(f"the merge of job {job_id} is still leased for {left_s:.1f} s") from None
            return f"skipped:merge-{current.status.value}"
        t.retries = 0
        try:
            with t.heartbeat(job_id, lease, delivery):
                changes = self._merge(job)
        except Exception as exc:
            t.after_retryable(job_id, lease, delivery, exc)
            raise
        changes["retries"] = t.retries
        with stage("status-update", jobId=job_id):
            finished = t.finish(job_id, lease, JobStatus.COMPLETED, changes,
                                remove=("lastError", "error", "failedChunk", "deadLettered"))
        t.blobs.delete(chunk_keys(job_id, int(job.details["chunks"])))
        if finished:
            t.record_completion(job_id, changes)
        return "completed:merged"

    def _merge(self, job: Job) -> dict[str, Any]:
        t, job_id = self.t, job.job_id
        notes = t.notes(job_id)
        started = time.perf_counter()
        with stage("merge", **notes):
            pieces = []
            for data in job.details["chunkPlan"]:
                chunk = Chunk.from_dict(data)
                result = json.loads(t.blobs.get_text(chunk_result_key(job_id, chunk.index)))
                pieces.append((chunk, Transcript.from_dict(result)))
            options = TranscribeOptions.from_api(job.details.get("options"), t.engine.model_name)
            duration_s = float(job.details.get("audioDurationS") or pieces[-1][0].end_s)
            transcript = merge(pieces, duration_s, keep_words=options.word_timestamps)
        merge_s = time.perf_counter() - started
        transcribed_at = iso(utc_now())
        started = time.perf_counter()
        outputs = work.write_outputs(t.blobs, job_id, transcript, notes)
        transcribe_s = float(job.details.get("chunksTranscribeS") or 0.0)
        return {
            **t.run_fields(duration_s, transcribe_s),
            "transcribeS": round(transcribe_s, 4),
            "mergeS": round(merge_s, 4),
            "uploadS": round(time.perf_counter() - started, 4),
            "language": transcript.language,
            "languageProbability": transcript.language_probability,
            "transcriptKeys": outputs,
            "transcribedAt": transcribed_at,
            "completedAt": iso(utc_now()),
        }


def describe(message: ChunkMessage) -> str:
    chunk = message.chunk
    return f"chunk {chunk.index + 1} of {message.count} ({chunk.start_s:.1f}-{chunk.end_s:.1f} s)"
