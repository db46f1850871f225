"""The reaper: ends FAILED, with the reason, every job whose worker died with the last delivery its
queue allows (a crash, out of memory, the function's timeout). Such a message goes to the dead-letter
queue and nothing of ours runs for it again, so without the reaper its job would stay PROCESSING (or
QUEUED) for ever and `whisperq wait` would run to its timeout.

It reads only the jobs table (the open jobs, and the chunks of fanned-out ones): the notes that workers
leave on a last delivery (transcriber/last_call.py). It never receives from the dead-letter queue, whose
messages stay for `whisperq dlq replay`. In AWS it is a small function on a schedule
(infra/template.yaml, ReaperFunction, every minute); on the twin its supervisor runs it (local/twin.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from whisperq.aws.chunks import ChunksTable
from whisperq.aws.clients import Clients
from whisperq.aws.job_leases import JobLeases, reaping
from whisperq.aws.jobs_table import ConditionFailed, JobsTable
from whisperq.config import Settings
from whisperq.core.jobs import Job, JobStatus, parse_iso
from whisperq.core.leases import LastCall, Lease
from whisperq.queue_config import QueueConfig
from whisperq.tracing import Log

# How often it looks: AWS's finest schedule (EventBridge's rate(1 minute)); the twin looks more often
# when its visibility timeout is short, so that a test of seconds sees the job end.
INTERVAL_S = 60.0


def interval_s(queue: QueueConfig) -> float:
    """How often the twin's reaper looks (the scheduled function's rate on AWS: INTERVAL_S)."""
    return min(INTERVAL_S, max(1.0, queue.visibility_timeout_s / 2))


@dataclass(frozen=True)
class Where:
    """Where a note was found: the job's item, or a chunk's; a done chunk's note counts for its merge."""

    chunk: int | None
    noted_on_chunk: bool
    merge: bool = False

    @property
    def failed_chunk(self) -> int | None:
        return None if self.merge else self.chunk


class Reaper:
    """One sweep over the open jobs; see the module docstring."""

    def __init__(self, settings: Settings, jobs: JobsTable, chunks: ChunksTable, log: Log,
                 notify: Callable[[Job], None] | None = None, clock: Callable[[], float] = time.time):
        self.settings = settings
        self.jobs = jobs
        self.chunks = chunks
        self.leases = JobLeases(jobs)
        self.log = log
        self.notify = notify
        self.clock = clock

    def sweep(self) -> list[Job]:
        """End every job left behind by a last delivery; the jobs it ended."""
        now = self.clock()
        reaped = []
        for job in self.jobs.get_many(self.jobs.open_job_ids()):
            if job.status.is_final:
                continue
            found = self.stranded(job, now)
            if found is None:
                continue
            call, what, where = found
            ended = self._reap(job, call, self.reason(job, call, what), where, now)
            if ended is None:
                continue  # it ended meanwhile, or a holder that came with another message works on it
            self.log.warning("job's last delivery was left behind; job failed",
                             extra={"job_id": job.job_id, "error": ended.error})
            reaped.append(ended)
            if self.notify is not None:
                self.notify(ended)
        return reaped

    def reason(self, job: Job, call: LastCall, what: str) -> str:
        """Why the job ended, for a person: what stopped and how, and what to do about it."""
        queue = self.settings.queue
        reason = call.why_stopped(what, queue.max_receive_count)
        if job.last_error:
            reason += f" (an earlier attempt failed with: {job.last_error})"
        # Another tier's dead letters are in its own DLQ (core/tiers.py).
        tier = f"--model {job.tier_model} " if job.tier and job.tier != self.settings.tiers.default.id else ""
        reason += (f". Its message is in the dead-letter queue; `whisperq dlq {tier}replay --job {job.job_id}` "
                   "runs it again")
        if call.timed_out:
            reason += f" (with a function timeout above {queue.function_timeout_s} s if it needs more time)"
        return reason

    def _reap(self, job: Job, call: LastCall, reason: str, where: Where, now: float) -> Job | None:
        """End the job FAILED, under the conditions that make it safe (see JobLeases.reap, ChunksTable.reap_job)."""
        try:
            if where.chunk is not None and not where.merge:  # a chunk's note: it and the job, in one transaction
                update = JobsTable.moving(reaping(job, call, reason, where.failed_chunk, now), JobStatus.FAILED,
                                          [JobStatus.UPLOADING, JobStatus.QUEUED, JobStatus.PROCESSING])
                if not self.chunks.reap_job(job.job_id, where.chunk, call.message_id, now, update):
                    return None
                return self.jobs.get(job.job_id)
            return self.leases.reap(job, call, reason, now, noted_here=not where.noted_on_chunk)
        except ConditionFailed:
            return None

    def stranded(self, job: Job, now: float) -> tuple[LastCall, str, Where] | None:
        """The last call left behind on `job` (with what its work was, and where the note is), if there is
        one that can no longer end by itself."""
        holders: dict[str, Lease] = {}

        def hold(lease: Lease | None) -> None:
            if lease is not None and lease.message_id is not None:
                known = holders.get(lease.message_id)
                if known is None or lease.expires_at > known.expires_at:
                    holders[lease.message_id] = lease

        hold(job.lease)
        merging = job.lease.message_id if job.lease else None  # a fanned-out job's lease is its merge's
        fanned_out = job.fanout is not None and job.fanout.chunks_sent_at is not None
        calls: list[tuple[LastCall, str, Where]] = []
        if job.last_call is not None and (not fanned_out or job.last_call.message_id == merging):
            fetching = job.status is JobStatus.UPLOADING and not (job.source or "s3://").startswith("s3://")
            what = "the merge" if fanned_out else "the fetch of its audio" if fetching else "the transcription"
            calls.append((job.last_call, what, Where(None, False)))
        if fanned_out:
            assert job.fanout is not None
            for record in self.chunks.all(job.job_id):
                hold(record.lease)
                if record.last_call is None:
                    continue
                if record.done_by is None:
                    if record.lease is not None and record.lease.left_s(now) > 0 and \
                            record.lease.message_id != record.last_call.message_id:
                        continue  # another message's holder works on the chunk
                    calls.append((record.last_call, f"chunk {record.index + 1} of {job.fanout.chunks}",
                                  Where(record.index, True)))
                elif record.last_call.message_id == merging:  # its message went on to merge, and died there
                    calls.append((record.last_call, "the merge", Where(record.index, True, merge=True)))
        replayed = parse_iso(job.timeline.replayed_at).timestamp() if job.timeline.replayed_at else 0.0
        visibility_s = self.settings.queue.visibility_timeout_s
        for call, what, where in calls:
            if call.at >= replayed and now >= call.stranded_at(holders.get(call.message_id), visibility_s):
                return call, what, where
        return None


def build(settings: Settings, clients: Clients, log: Log) -> Reaper:
    """The reaper with its adapters, handing the callbacks of the jobs it ends to their sender."""
    from whisperq.aws.queues import Queue
    from whisperq.transcriber import callbacks

    jobs = JobsTable(clients, settings.table)
    chunks = ChunksTable(clients, settings.chunks_table, jobs, settings.job_retention_days * 86400)
    return Reaper(settings, jobs, chunks, log, notify=lambda job: callbacks.enqueue(
        job, settings, lambda: Queue.by_name(clients, settings.callbacks_queue_name), jobs, log))


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The scheduled Lambda function: one sweep."""
    from aws_lambda_powertools import Logger

    from whisperq.aws.clients import Clients

    log = Logger(service="whisperq-reaper")
    settings = Settings.from_env()
    reaped = build(settings, Clients(settings), log).sweep()
    return {"reaped": [job.job_id for job in reaped]}
