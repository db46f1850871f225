"""What happens around a job's end that is not the end itself: its callback, and the removal of what a
cancelled job's workers wrote after the cancel had deleted the rest."""

from __future__ import annotations

from whisperq.core.jobs import Job
from whisperq.core.keys import output_keys, work_prefixes
from whisperq.transcriber import callbacks
from whisperq.transcriber.context import WorkerContext


def notify(context: WorkerContext, job: Job) -> None:
    """Hand the job's callback (if it has one) to its sender, through the callbacks queue: the worker
    never waits on a receiver. Never raises."""
    callbacks.enqueue(job, context.settings, context.callbacks_queue, context.jobs, context.log)


def remove_outputs(context: WorkerContext, job_id: str) -> None:
    """Delete a job's transcripts and its workers' objects (a cancelled job's, written late)."""
    context.blobs.delete(output_keys(job_id))
    remove_work(context, job_id)


def remove_work(context: WorkerContext, job_id: str) -> None:
    """Delete what a job's workers made on the way (chunks, the attempts' transcripts)."""
    for prefix in work_prefixes(job_id):
        context.blobs.delete_prefix(prefix)
