"""The writes a worker makes to a job: take it, renew the lease, release it after a failed attempt,
commit the transcript, complete or fail the job; and for a fanned-out job, record its plan, hand it to
its chunks and claim its merge. Each is one conditional write. Those made under a lease hold only
while the caller's lease does, so a worker that lost its lease changes nothing; taking (a job, its
merge) holds only from a holder whose lease the caller saw run out; a chunk that failed for good
fails its job only together with its own chunk lease (aws/chunks.py)."""

from __future__ import annotations

from collections.abc import Mapping

from whisperq.aws.expressions import Update
from whisperq.aws.job_items import LAST_CALL_NAMES, LEASE_NAMES, lease_attributes, with_last_call
from whisperq.aws.jobs_table import JobsTable
from whisperq.core.jobs import FanOutState, Job, JobStatus, RunStats, Timeline, attributes_of, iso, utc_now
from whisperq.core.leases import LastCall, Lease

PROCESSING = JobStatus.PROCESSING
WAITING = [JobStatus.UPLOADING, JobStatus.QUEUED]
# What a completed job no longer needs: the lease, and the traces of attempts that failed.
_CLEARED_ON_COMPLETION = (*LEASE_NAMES, *LAST_CALL_NAMES, "lastError", "error", "failedChunk", "failedAt",
                          "deadLettered")


def _holds(update: Update, lease: Lease) -> str:
    return update.equals("leaseId", lease.id)


def _held_by(job: Job, lease: Lease) -> bool:
    return job.lease is not None and job.lease.id == lease.id


class JobLeases:
    """A worker's writes to jobs, each conditional on the worker's lease."""

    def __init__(self, jobs: JobsTable):
        self.jobs = jobs

    def take(self, job_id: str, lease: Lease, replacing: Lease | None, receive_count: int, timeline: Timeline,
             queue_wait_s: float | None, last_call: LastCall | None = None) -> Job:
        """Move a waiting job to PROCESSING under `lease`, or take a PROCESSING one over from the holder
        whose lease (`replacing`, seen run out) has not changed since; one more attempt counted. Never a
        job handed to its chunks (they carry it)."""
        update = Update().set({**lease_attributes(lease), "receiveCount": receive_count, **attributes_of(timeline),
                               **attributes_of(RunStats(queue_wait_s=queue_wait_s))}).increment("attempts")
        with_last_call(update, last_call)
        waiting = update.one_of("status", [s.value for s in WAITING])
        if replacing is not None:
            waiting = Update.either(waiting, Update.both(update.equals("status", PROCESSING.value),
                                                         update.equals("leaseId", replacing.id)))
        update.require(waiting).require(update.absent("chunksSentAt"))
        return self.jobs.move(job_id, PROCESSING, [*WAITING, PROCESSING], update, lambda job: _held_by(job, lease))

    def renew(self, job_id: str, lease: Lease) -> None:
        """Push the lease's end on to `lease.expires_at` (the heartbeat of a long attempt)."""
        update = Update().set({"leaseExpiresAt": lease.expires_at})
        update.require(_holds(update, lease))
        self.jobs.write(job_id, "renew its lease", update, lambda job: _held_by(job, lease))

    def release(self, job_id: str, lease: Lease, last_error: str) -> Job:
        """PROCESSING -> QUEUED after a failed attempt, so that the message's next delivery takes it at once."""
        update = Update().set({"lastError": last_error}).remove(LEASE_NAMES)
        update.require(_holds(update, lease))
        return self.jobs.move(job_id, JobStatus.QUEUED, [PROCESSING], update,
                              lambda job: job.lease is None and job.last_error == last_error)

    def commit_result(self, job_id: str, lease: Lease, result_key: str, run: RunStats, timeline: Timeline) -> Job:
        """Make `result_key` the job's transcript, once: every output is written from it from now on,
        whoever writes them. Holds only under the lease and only if no transcript was committed."""
        update = Update().set({"resultKey": result_key, **attributes_of(run), **attributes_of(timeline)})
        update.require(_holds(update, lease)).require(update.equals("status", PROCESSING.value))
        update.require(update.absent("resultKey"))
        return self.jobs.write(job_id, "commit its transcript", update, lambda job: job.result_key == result_key)

    def complete(self, job_id: str, lease: Lease, transcript_keys: Mapping[str, str], run: RunStats,
                 timeline: Timeline, merge_s: float | None = None) -> Job:
        """PROCESSING -> COMPLETED under the lease, with the outputs' keys."""
        update = Update().set({"transcriptKeys": dict(transcript_keys), "finishedBy": lease.id, **attributes_of(run),
                               **attributes_of(timeline)})
        if merge_s is not None:
            update.set({"mergeS": merge_s})
        update.remove(_CLEARED_ON_COMPLETION).require(_holds(update, lease))
        return self.jobs.move(job_id, JobStatus.COMPLETED, [PROCESSING], update,
                              lambda job: job.finished_by == lease.id)

    def fail(self, job_id: str, lease: Lease, reason: str, last_error: str | None = None,
             dead_lettered: bool = False) -> Job:
        """End the job FAILED under the worker's lease, with a reason a person can act on."""
        update = failing(reason, last_error, dead_lettered).set({"finishedBy": lease.id})
        update.remove(LEASE_NAMES).require(_holds(update, lease))
        return self.jobs.move(job_id, JobStatus.FAILED, [PROCESSING], update, lambda job: job.finished_by == lease.id)

    def reap(self, job: Job, call: LastCall, reason: str, now: float, noted_here: bool) -> Job:
        """End FAILED a job whose last call was left behind (its worker died with it), with `reason`:
        only while no live lease is held on the whole job (a holder that came with another message
        still works on it), the job is open and, for a note on the job's own item (`noted_here`), the
        note is still that call's (a take by another message removes it)."""
        update = reaping(job, call, reason, None, now)
        if noted_here:
            update.require(update.equals("lastCallMessageId", call.message_id))
        return self.jobs.move(job.job_id, JobStatus.FAILED, [*WAITING, PROCESSING], update,
                              lambda job: job.finished_by == reaper_mark(call))

    # --- fan-out --------------------------------------------------------------------------
    def record_plan(self, job_id: str, lease: Lease, plan: FanOutState, run: RunStats) -> Job:
        """Record the job's chunk plan, once, under the lease, before any chunk message is sent."""
        update = Update().set({**attributes_of(plan), **attributes_of(run)})
        update.require(_holds(update, lease)).require(update.equals("status", PROCESSING.value))
        update.require(update.absent("chunkPlanId"))
        return self.jobs.write(job_id, "record its chunk plan", update,
                               lambda job: job.fanout is not None and job.fanout.chunk_plan_id == plan.chunk_plan_id)

    def mark_sent(self, job_id: str, lease: Lease, split_s: float) -> Job:
        """Every chunk message is on the queue: the job's lease ends, its chunks carry it from here."""
        sent_at = iso(utc_now())
        update = Update().set({"chunksSentAt": sent_at, "splitS": split_s}).remove(LEASE_NAMES)
        update.require(_holds(update, lease)).require(update.equals("status", PROCESSING.value))
        return self.jobs.write(job_id, "hand the job to its chunks", update,
                               lambda job: job.fanout is not None and job.fanout.chunks_sent_at == sent_at)

    def claim_merge(self, job_id: str, lease: Lease, replacing: Lease | None, last_call: LastCall | None = None) -> Job:
        """Take the job's lease to merge it: every chunk counted done, and no holder but one whose lease
        (`replacing`, seen run out) has not changed since."""
        update = with_last_call(Update().set(lease_attributes(lease)), last_call)
        update.require(update.same("chunksDone", "chunks")).require(update.exists("chunksSentAt"))
        update.require(update.equals("leaseId", replacing.id) if replacing else update.absent("leaseId"))
        return self.jobs.move(job_id, PROCESSING, [JobStatus.QUEUED, PROCESSING], update,
                              lambda job: _held_by(job, lease))


def reaper_mark(call: LastCall) -> str:
    """How a job ended by the reaper says so (finishedBy)."""
    return f"reaper:{call.message_id}"


def reaping(job: Job, call: LastCall, reason: str, failed_chunk: int | None, now: float) -> Update:
    """The changes that end FAILED a job whose last call was left behind, while no live lease holds it
    (the status move itself: JobsTable.moving)."""
    update = failing(reason, job.last_error, True, failed_chunk).set({"finishedBy": reaper_mark(call)})
    update.remove([*LEASE_NAMES, *LAST_CALL_NAMES])
    return update.require(Update.either(update.absent("leaseId"), update.below("leaseExpiresAt", now)))


def failing(reason: str, last_error: str | None = None, dead_lettered: bool = False,
            failed_chunk: int | None = None) -> Update:
    """The changes that end a job FAILED (the status move itself: JobsTable.moving)."""
    update = Update().set({"error": reason, "failedAt": iso(utc_now())})
    update.set({name: value for name, value in (("lastError", last_error), ("failedChunk", failed_chunk))
                if value is not None})
    if dead_lettered:
        update.set({"deadLettered": True})
    return update
