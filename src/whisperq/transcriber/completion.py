"""Finishing a job under its lease, the same way for a file transcribed whole and for a merged one.

A transcript, once written, never changes. So an attempt first stores its transcript under a key of
its own (results/<jobId>/<leaseId>.json) and commits that key on the job, once, under its lease; only
then are the five outputs written, always from the committed transcript. An attempt that lost its
lease commits nothing and writes nothing; one that takes over a job whose transcript was committed
(its committer died before it finished) writes the same outputs from the same transcript.
"""

from __future__ import annotations

import json
import time

from whisperq.aws.jobs_table import ConditionFailed
from whisperq.core.jobs import Job, RunStats, Timeline, iso, utc_now
from whisperq.core.keys import result_key
from whisperq.core.transcript import Transcript
from whisperq.tracing import stage
from whisperq.transcriber import stages
from whisperq.transcriber.attempts import Attempt
from whisperq.transcriber.context import WorkerContext
from whisperq.transcriber.endings import notify, remove_work


def commit(context: WorkerContext, attempt: Attempt[Job], job_id: str, transcript: Transcript, run: RunStats,
           timeline: Timeline) -> Job | str:
    """Store the attempt's transcript and commit it as the job's (with what making it measured); the job
    after, or the outcome when the job was cancelled meanwhile. Raises LeaseLost when the lease went."""
    key = result_key(job_id, attempt.held.id)
    context.blobs.put_text(key, json.dumps(transcript.to_dict()), "application/json")
    try:
        return context.leases.commit_result(job_id, attempt.held, key, run, timeline)
    except ConditionFailed as exc:
        return attempt.refused(exc)


def publish(context: WorkerContext, attempt: Attempt[Job], job: Job, outcome: str, merge_s: float | None = None) -> str:
    """Write the five formats of the job's committed transcript and end the job COMPLETED, under the lease."""
    assert job.result_key is not None, "commit() first"
    notes = context.notes(job.job_id)
    transcript = Transcript.from_dict(json.loads(context.blobs.get_text(job.result_key)))
    started = time.perf_counter()
    outputs = stages.write_outputs(context.blobs, job.job_id, transcript, notes, job.outputs_stem)
    run = RunStats(upload_s=round(time.perf_counter() - started, 4), retries=attempt.retries)
    try:
        with stage("status-update", jobId=job.job_id):
            done = context.leases.complete(job.job_id, attempt.held, outputs, run,
                                           Timeline(completed_at=iso(utc_now())), merge_s)
    except ConditionFailed as exc:
        return attempt.refused(exc)
    remove_work(context, job.job_id)  # the attempts' transcripts and the chunks: no longer needed
    record_completion(context, done)
    return outcome


def record_completion(context: WorkerContext, job: Job) -> None:
    """Metrics, the log line and the callback of a completed job."""
    run, metrics = job.run, context.metrics
    metrics.add_metric("JobsCompleted", "Count", 1)
    metrics.add_metric("AudioSeconds", "Seconds", run.audio_duration_s or 0.0)
    metrics.add_metric("TranscribeTime", "Seconds", run.transcribe_s or 0.0)
    metrics.add_metric("RealTimeFactor", "None", run.real_time_factor or 0.0)
    if run.queue_wait_s is not None:
        metrics.add_metric("QueueWait", "Seconds", run.queue_wait_s)
    context.log.info("job completed", extra={"job_id": job.job_id, "audio_s": run.audio_duration_s,
                                             "rtf": run.real_time_factor})
    notify(context, job)


def run_stats(context: WorkerContext, transcript: Transcript, duration_s: float, transcribe_s: float,
              diarized: stages.Diarized | None = None, **timings: float) -> RunStats:
    """What a run that made `transcript` records: the audio, the engine, this worker, its stage times."""
    return RunStats(
        audio_duration_s=round(duration_s, 3),
        transcribe_s=round(transcribe_s, 4),
        real_time_factor=round(duration_s / transcribe_s, 2) if transcribe_s else 0.0,
        engine=context.engine.name,
        model=context.engine.model_name,
        model_load_s=round(context.engine.load_time_s, 4),
        cold_start=context.take_cold_start(),
        language=transcript.language,
        language_probability=transcript.language_probability,
        speakers=len(transcript.speakers) if diarized is not None else None,
        diarization=diarized.note if diarized is not None else None,
    ).with_timings(timings)
