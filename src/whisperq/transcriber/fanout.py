"""Fan-out: one long file cut at pauses into chunks that every worker can take, merged back by the
worker that counts the last one. Each step is an attempt of the delivery protocol (attempts.py).

- Split (under the whole job's lease, from whole_file): the worker decodes the file once, cuts it
  (core.fanout.plan_chunks on the Silero VAD's speech regions), stores the plan under a prefix of its
  own (chunks/<jobId>/<planId>/) and records it on the job, once; writes each chunk as FLAC beside it,
  sends one message per chunk to the queue the job came from, then lets the job's lease go: from there
  the chunk messages carry the job. A split done again (its worker died) reuses the recorded plan.
- Chunk (under the chunk's own lease, in the chunks table): any worker transcribes the chunk with the
  job's options, stores the result under a key named by its lease, and counts the chunk done in one
  transaction; the merge reads the result of the lease that counted it, so a late duplicate's result
  is never read.
- Merge (under the job's lease, claimed once every chunk is done): the chunks' results in order, one
  transcript, finished as a whole file's is (completion).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

from whisperq.aws.chunks import ChunkNotTaken
from whisperq.aws.jobs_table import ConditionFailed
from whisperq.core.errors import JobNotFound, TransientError
from whisperq.core.fanout import Chunk, ChunkMessage, merge, plan_chunks, shift
from whisperq.core.jobs import ChunkRecord, FanOutState, Job, JobStatus, RunStats, Timeline, iso, utc_now
from whisperq.core.keys import chunk_audio_key, chunk_plan_key, chunk_result_key
from whisperq.core.options import TranscribeOptions
from whisperq.core.transcript import Transcript
from whisperq.tracing import stage
from whisperq.transcriber import audio, completion, stages
from whisperq.transcriber.attempts import Attempt, ChunkLessor, MergeLessor
from whisperq.transcriber.context import WorkerContext
from whisperq.transcriber.diarizers import SpeechEmbeddings
from whisperq.transcriber.messages import Delivery

MESSAGES_PER_SEND = 10  # SQS's batch limit


class FanOut:
    """Splits long files, transcribes chunks and merges them (see the module docstring)."""

    def __init__(self, context: WorkerContext):
        self.context = context

    # --- split --------------------------------------------------------------------------------
    def split(self, job: Job, attempt: Attempt[Job], fetched: stages.Fetched, chunk_s: float) -> Job | str:
        """Cut the file into chunks of about `chunk_s` and send them, under the job's lease; the job
        handed to its chunks (see after_split), or the outcome when the job was cancelled meanwhile."""
        context, job_id = self.context, job.job_id
        started = time.perf_counter()
        with stage("split", **context.notes(job_id)):
            planned = self._plan(job, attempt, fetched, chunk_s)
            if isinstance(planned, str):
                return planned
            plan_id, plan = planned
            # Write and announce chunk by chunk: the first one's worker starts while the rest are cut.
            pending: list[str] = []
            for chunk in plan:
                key = chunk_audio_key(job_id, plan_id, chunk.index)
                piece = fetched.samples[int(chunk.start_s * audio.SAMPLE_RATE):int(chunk.end_s * audio.SAMPLE_RATE)]
                context.blobs.put_bytes(key, audio.encode_flac(piece), "audio/flac")
                pending.append(ChunkMessage(job_id, len(plan), key, chunk).to_body())
                if len(pending) == MESSAGES_PER_SEND or chunk.index in (0, len(plan) - 1):
                    context.queue.send(attempt.delivery, pending)
                    pending = []
        try:
            handed = context.leases.mark_sent(job_id, attempt.held, round(time.perf_counter() - started, 4))
        except ConditionFailed as exc:
            return attempt.refused(exc)
        context.log.info("job fanned out", extra={"chunks": len(plan)})
        return handed

    def after_split(self, job: Job, delivery: Delivery) -> str:
        """The split let the job go: merge now if every chunk finished before it did."""
        assert job.fanout is not None
        return self.resume(job, delivery, f"fanned-out:{job.fanout.chunks}")

    def _plan(self, job: Job, attempt: Attempt[Job], fetched: stages.Fetched,
              chunk_s: float) -> tuple[str, list[Chunk]] | str:
        """The job's plan: the one an earlier split recorded, or a new one, stored and recorded once."""
        context, job_id = self.context, job.job_id
        if job.fanout is not None and job.fanout.chunk_plan_id:
            return job.fanout.chunk_plan_id, self._read_plan(job)
        plan = plan_chunks(fetched.duration_s, audio.speech_regions(fetched.samples), chunk_s,
                           min_chunk_s=context.settings.queue.chunk_s)
        plan_id = attempt.held.id
        context.blobs.put_text(chunk_plan_key(job_id, plan_id), json.dumps({"chunks": [c.to_dict() for c in plan]}),
                               "application/json")
        timings = {name: round(value, 4) for name, value in fetched.timings.items()}
        try:
            state = FanOutState(chunks=len(plan), chunk_plan_id=plan_id, fanned_out_at=iso(utc_now()))
            context.leases.record_plan(job_id, attempt.held, state,
                                       RunStats(audio_duration_s=round(fetched.duration_s, 3)).with_timings(timings))
        except ConditionFailed as exc:
            return attempt.refused(exc)
        return plan_id, plan

    def _read_plan(self, job: Job) -> list[Chunk]:
        assert job.fanout is not None and job.fanout.chunk_plan_id
        data = json.loads(self.context.blobs.get_text(chunk_plan_key(job.job_id, job.fanout.chunk_plan_id)))
        return [Chunk.from_dict(chunk) for chunk in data["chunks"]]

    # --- one chunk ----------------------------------------------------------------------------
    def handle_chunk(self, message: ChunkMessage, delivery: Delivery) -> str:
        self.context.log.append_keys(job_id=message.job_id, message_id=delivery.message_id, chunk=message.chunk.index)
        try:
            return self._handle_chunk(message, delivery)
        finally:
            self.context.log.remove_keys(["job_id", "message_id", "chunk"])

    def _handle_chunk(self, message: ChunkMessage, delivery: Delivery) -> str:
        context, job_id, index = self.context, message.job_id, message.chunk.index
        try:
            job = context.jobs.get(job_id)
        except JobNotFound:
            context.log.warning("ignoring a chunk of an unknown job")
            return "ignored:unknown-job"
        if job.status in (JobStatus.COMPLETED, JobStatus.CANCELLED) or job.fanout is None:
            return self._after_end(job)
        record = context.chunks.get(job_id, index)
        if record.done_by:  # a duplicate, or the redelivery of a worker that died before its merge
            return self.resume(job, delivery, "skipped:chunk-done")
        lessor = ChunkLessor(context, job_id, message.chunk, message.count, delivery)
        attempt = Attempt(context, lessor, delivery)
        if attempt.begin(record.lease) is None:
            return "skipped:chunk-leased-elsewhere"
        try:
            options = TranscribeOptions.from_api(job.options, context.engine.model_name)
            if message.chunk.has_seam and not options.word_timestamps:
                options = replace(options, word_timestamps=True)  # the merge trims a hard cut word by word
            with attempt.heartbeat():
                transcribe_s = self._transcribe(job, message, options, attempt)
            counted = context.chunks.count_done(job_id, index, attempt.held, transcribe_s)
        except ChunkNotTaken as exc:
            return attempt.refused(exc)
        except Exception as exc:
            return attempt.ended_by(exc, f"{lessor.what} could not be transcribed")
        if counted.last:
            return self.merge(counted.job, delivery)
        return f"chunk-done:{index}"

    def _after_end(self, job: Job) -> str:
        # A cancelled job's files went with the cancel; a worker that writes late removes its own.
        if job.status is JobStatus.CANCELLED:
            return "skipped:cancelled"
        if job.fanout is None:
            self.context.log.warning("ignoring a chunk of a job that has no chunk plan")
            return "ignored:no-plan"
        return f"skipped:{job.status.value}"

    def _transcribe(self, job: Job, message: ChunkMessage, options: TranscribeOptions,
                    attempt: Attempt[ChunkRecord]) -> float:
        context, index = self.context, message.chunk.index
        notes = context.notes(job.job_id, chunk=index)
        fetched = stages.fetch(context.blobs, message.key, notes)
        transcript, transcribe_s = stages.transcribe(context.engine, fetched.samples, options, notes, context.faults)
        context.speed.record(fetched.duration_s, transcribe_s)
        if context.faults is not None:
            context.faults.maybe_crash()  # a worker killed mid-chunk: the chunk leased, its result not written
        result = shift(transcript, message.chunk.start_s).to_dict()
        if options.diarize:
            # The merge clusters every chunk's speech at once: one set of speakers for the whole file.
            embeddings, embed_s = stages.embed_speech(context.diarizer, fetched.samples, notes)
            embeddings = embeddings.shifted(message.chunk.start_s)
            owned = [message.chunk.owns(float(s), float(e)) for s, e in zip(embeddings.starts, embeddings.ends,
                                                                              strict=True)]
            embeddings = SpeechEmbeddings(embeddings.starts[owned], embeddings.ends[owned], embeddings.vectors[owned])
            result |= {"speech": embeddings.to_dict(), "embedS": round(embed_s, 4)}
        assert job.fanout is not None and job.fanout.chunk_plan_id
        with stage("upload", **notes):
            context.blobs.put_text(chunk_result_key(job.job_id, job.fanout.chunk_plan_id, index, attempt.held.id),
                                   json.dumps(result), "application/json")
        return transcribe_s

    # --- merge --------------------------------------------------------------------------------
    def resume(self, job: Job, delivery: Delivery, otherwise: str = "skipped:fanned-out") -> str:
        """A message of a fanned-out job came: merge it if every chunk is done and it did not fail."""
        if job.fanout is not None and job.fanout.all_done and job.status is not JobStatus.FAILED:
            return self.merge(job, delivery)
        return otherwise

    def merge(self, job: Job, delivery: Delivery) -> str:
        """Claim the job's lease (every chunk done, no live holder) and finish it with the chunks merged."""
        context = self.context
        attempt = Attempt(context, MergeLessor(context, job.job_id, delivery), delivery)
        claimed = attempt.begin(job.lease)
        if claimed is None:
            return "skipped:merge-taken"
        try:
            with attempt.heartbeat():
                if claimed.result_key:  # merged and committed by a worker that died before it finished
                    return completion.publish(context, attempt, claimed, "completed:merged")
                transcript, merge_s, diarized, diarize_s = self._merged(claimed)
                assert claimed.fanout is not None
                timings = {"diarize_s": diarize_s} if diarized is not None else {}
                run = completion.run_stats(context, transcript, transcript.duration_s,
                                           claimed.fanout.chunks_transcribe_s or 0.0, diarized, **timings)
                committed = completion.commit(context, attempt, claimed.job_id, transcript, run, Timeline(
                    transcribed_at=iso(utc_now()), model_ready_at=context.model_ready_at))
                if isinstance(committed, str):
                    return committed
                return completion.publish(context, attempt, committed, "completed:merged", round(merge_s, 4))
        except Exception as exc:
            return attempt.ended_by(exc, "the merge of the chunks failed")

    def _merged(self, job: Job) -> tuple[Transcript, float, stages.Diarized | None, float]:
        """The chunks' results, each the one its counted lease wrote, merged in order; the seconds it took;
        for a diarized job, its speakers (the chunks' speech clustered at once) and the seconds they took."""
        context, job_id = self.context, job.job_id
        assert job.fanout is not None and job.fanout.chunk_plan_id
        started = time.perf_counter()
        with stage("merge", **context.notes(job_id)):
            plan = self._read_plan(job)
            done_by = {record.index: record.done_by for record in context.chunks.all(job_id) if record.done_by}
            missing = [chunk.index for chunk in plan if chunk.index not in done_by]
            if missing:
                raise TransientError(f"chunks {missing} of job {job_id} are not done yet")
            results = [json.loads(context.blobs.get_text(chunk_result_key(
                job_id, job.fanout.chunk_plan_id, chunk.index, done_by[chunk.index]))) for chunk in plan]
            pieces = [(chunk, Transcript.from_dict(result)) for chunk, result in zip(plan, results, strict=True)]
            options = TranscribeOptions.from_api(job.options, context.engine.model_name)
            duration_s = job.run.audio_duration_s or pieces[-1][0].end_s
            transcript = merge(pieces, duration_s, keep_words=options.word_timestamps)
        merge_s = time.perf_counter() - started
        if not options.diarize:
            return transcript, merge_s, None, 0.0
        speech = SpeechEmbeddings.joined([SpeechEmbeddings.from_dict(r["speech"]) for r in results if "speech" in r])
        diarized = stages.label_speakers(context.diarizer, transcript, speech, options.speaker_hints,
                                         context.notes(job_id))
        embed_s = sum(float(r.get("embedS") or 0.0) for r in results)
        return diarized.transcript, merge_s, diarized, embed_s + diarized.cluster_s
