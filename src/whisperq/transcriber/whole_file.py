"""One uploaded file: take its job, fetch and decode the audio, then transcribe it whole or hand it to
fan-out (whisperq.core.fanout.choose_cut decides), and finish under the lease (completion)."""

from __future__ import annotations

from whisperq.aws.s3_events import ObjectEvent
from whisperq.core.errors import (
    InjectedFault,
    JobNotFound,
    PermanentJobError,
    TransientError,
    WhisperqError,
)
from whisperq.core.fanout import Budget, Cut, choose_cut, chunk_count
from whisperq.core.jobs import Job, JobStatus, Timeline, iso, utc_now
from whisperq.core.keys import job_id_from_audio_key
from whisperq.core.options import TranscribeOptions
from whisperq.transcriber import completion, stages
from whisperq.transcriber.attempts import Attempt, JobLessor
from whisperq.transcriber.context import WorkerContext
from whisperq.transcriber.fanout import FanOut
from whisperq.transcriber.messages import Delivery

# A diarized job's work against its transcription alone: measured 1.10-1.16 on tiny.en
# (docs/benchmarks/diarization.json), with room for a slower encoder run.
DIARIZE_MARGIN = 1.25


class WholeFile:
    """Turns one S3 upload event into a transcript (or into chunks, through FanOut)."""

    def __init__(self, context: WorkerContext, fanout: FanOut):
        self.context = context
        self.fanout = fanout

    def handle(self, event: ObjectEvent, delivery: Delivery) -> str:
        job_id = job_id_from_audio_key(event.key)
        # Every log line about this object carries its job id (and the message it came in).
        self.context.log.append_keys(job_id=job_id, message_id=delivery.message_id)
        try:
            return self._handle(job_id, event, delivery)
        finally:
            self.context.log.remove_keys(["job_id", "message_id"])

    def _handle(self, job_id: str | None, event: ObjectEvent, delivery: Delivery) -> str:
        log = self.context.log
        if job_id is None:
            log.warning("ignoring an object outside audio/<jobId>/", extra={"key": event.key})
            return "ignored:foreign-key"
        try:
            job = self.context.jobs.get(job_id)
        except JobNotFound:
            log.warning("deleting audio for an unknown job", extra={"key": event.key})
            self._discard(event)
            return "ignored:unknown-job"
        if job.audio_key != event.key:
            log.warning("deleting an object that is not the job's upload", extra={"key": event.key})
            self._discard(event)
            return "ignored:not-the-upload"
        if job.status is JobStatus.CANCELLED:
            log.info("audio arrived for a cancelled job; deleting it")
            self._discard(event)
            return "skipped:CANCELLED"
        if job.status.is_final:
            log.info("job already final; duplicate delivery acknowledged")
            return f"skipped:{job.status.value}"
        if job.fanout is not None and job.fanout.chunks_sent_at:
            return self.fanout.resume(job, delivery)  # its chunk messages carry it
        attempt = Attempt(self.context, JobLessor(self.context, job_id, delivery), delivery)
        taken = attempt.begin(job.lease if job.status is JobStatus.PROCESSING else None)
        if taken is None:
            return "skipped:leased-elsewhere"
        return self._run(taken, event, attempt)

    def _run(self, job: Job, event: ObjectEvent, attempt: Attempt[Job]) -> str:
        try:
            with attempt.heartbeat():
                done = self._work(job, event, attempt)
        except Exception as exc:
            return attempt.ended_by(exc)
        if isinstance(done, Job):  # fanned out: the job's lease is gone, its chunks carry it
            return self.fanout.after_split(done, attempt.delivery)
        return done

    def _work(self, job: Job, event: ObjectEvent, attempt: Attempt[Job]) -> Job | str:
        context = self.context
        if job.result_key:  # committed by an attempt that died before it finished: finish it
            return completion.publish(context, attempt, job, "completed")
        options = TranscribeOptions.from_api(job.options, context.engine.model_name)
        fetched = self._fetch(job.job_id, event)
        cut, chunk_s = self._cut(job, fetched, attempt.delivery, options.diarize)
        if cut is Cut.FAN_OUT:
            return self.fanout.split(job, attempt, fetched, chunk_s)
        if cut is Cut.WAIT:
            raise TransientError("not enough time left in this invocation to transcribe the file; its message "
                                 "returns for a fresh one")
        if cut is Cut.TOO_LONG:
            raise PermanentJobError(
                f"the audio lasts {fetched.duration_s:.0f} s, and transcribing it whole would take about "
                f"{context.speed.expected_s(fetched.duration_s):.0f} s here, more than the function's timeout of "
                f"{context.settings.queue.function_timeout_s} s; turn fan-out on (queue_config "
                "fanout_min_duration_s) or raise function_timeout_s")
        return self._transcribe(job, fetched, options, attempt)

    def _fetch(self, job_id: str, event: ObjectEvent) -> stages.Fetched:
        settings = self.context.settings
        if settings.fault_poison_key and settings.fault_poison_key in event.key:
            raise InjectedFault(f"injected poison fault: key contains {settings.fault_poison_key!r}")
        try:
            stages.check_upload(self.context.blobs, settings, event.key)
        except PermanentJobError:
            self._discard(event)  # refused (its size, its type): not kept for days, whatever its size
            raise
        fetched = stages.fetch(self.context.blobs, event.key, self.context.notes(job_id))
        if fetched.duration_s > settings.max_audio_duration_s:
            raise PermanentJobError(
                f"the audio lasts {fetched.duration_s:.0f} s, over the limit of {settings.max_audio_duration_s} s; "
                "split it into shorter files"
            )
        return fetched

    def _discard(self, event: ObjectEvent) -> None:
        """Delete an uploaded object nobody will transcribe (best effort: the bucket's lifecycle is the net)."""
        try:
            self.context.blobs.delete([event.key])
        except WhisperqError as exc:
            self.context.log.warning("could not delete a refused object", extra={"key": event.key, "error": str(exc)})

    def _cut(self, job: Job, fetched: stages.Fetched, delivery: Delivery, diarize: bool) -> tuple[Cut, float]:
        """Whole or cut, and when cut, the chunks' length (see core.fanout.chunk_count)."""
        config = self.context.settings.queue
        if job.fanout is not None:
            return Cut.FAN_OUT, config.chunk_s  # an earlier attempt recorded a plan: finish that split
        can_split = self.context.queue.can_send(delivery) and not stages.is_silent(fetched.samples)
        budget = Budget(
            duration_s=fetched.duration_s,
            expected_s=self.context.speed.expected_s(fetched.duration_s) * (DIARIZE_MARGIN if diarize else 1.0),
            time_left_s=delivery.time_left_s(config.function_timeout_s),
            function_timeout_s=config.function_timeout_s, fanout_min_duration_s=config.fanout_min_duration_s,
            chunk_s=config.chunk_s, can_split=can_split,
            idle_workers=self.context.queue.idle_workers(delivery, config.max_concurrency)
            if can_split else None,
            max_concurrency=config.max_concurrency)
        cut = choose_cut(budget)
        chunks = chunk_count(budget) if cut is Cut.FAN_OUT else 1
        self.context.log.info("whole or cut", extra={"cut": cut.value, "audio_s": round(fetched.duration_s, 1),
                                                     "idle_workers": budget.idle_workers, "chunks": chunks})
        return cut, fetched.duration_s / chunks

    def _transcribe(self, job: Job, fetched: stages.Fetched, options: TranscribeOptions, attempt: Attempt[Job]) -> str:
        context = self.context
        notes = context.notes(job.job_id)
        transcript, transcribe_s = stages.transcribe(context.engine, fetched.samples, options, notes, context.faults)
        context.speed.record(fetched.duration_s, transcribe_s)
        timings = dict(fetched.timings)
        diarized: stages.Diarized | None = None
        if options.diarize:
            embeddings, embed_s = stages.embed_speech(context.diarizer, fetched.samples, notes)
            diarized = stages.label_speakers(context.diarizer, transcript, embeddings, options.speaker_hints, notes)
            transcript, timings["diarize_s"] = diarized.transcript, embed_s + diarized.cluster_s
        if context.faults is not None:
            context.faults.maybe_crash()  # mid-batch: the job taken, its transcript not yet written
        run = completion.run_stats(context, transcript, fetched.duration_s, transcribe_s, diarized, **timings)
        committed = completion.commit(context, attempt, job.job_id, transcript, run, Timeline(
            transcribed_at=iso(utc_now()), model_ready_at=context.model_ready_at))
        if isinstance(committed, str):
            return committed
        return completion.publish(context, attempt, committed, "completed")
