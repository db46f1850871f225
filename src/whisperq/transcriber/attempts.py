"""The delivery protocol: one attempt at one piece of work (a whole job, a chunk, a merge) under a lease.

Every piece of work goes through the same steps, whatever it is:
- begin: take the lease (whose table write is the lessor's), acknowledge the delivery as a duplicate
  while another message's holder works, or hand our own message back while its holder's lease lives
  (whisperq.core.leases decides which);
- heartbeat: while it works, extend the message's visibility and renew the lease;
- a retryable failure releases the lease so that the message's next delivery takes it at once, and on
  the last delivery the queue allows ends the job FAILED with the reason (the message goes to the DLQ);
- a permanent failure ends the job FAILED; the message is acknowledged;
- finishing happens under the lease, and a write that finds the lease gone changes nothing: the newer
  attempt that holds the work (and its message) carries on, so ours is left to it (LeaseLost).
"""

from __future__ import annotations

import time
from typing import Generic, Protocol, TypeVar

from whisperq.aws.chunks import ChunkNotTaken
from whisperq.aws.job_leases import failing
from whisperq.aws.jobs_table import ConditionFailed
from whisperq.core.errors import InvalidRequest, PermanentJobError, TransientError, WhisperqError
from whisperq.core.fanout import Chunk
from whisperq.core.jobs import ChunkRecord, Job, JobStatus, Timeline, iso, utc_now
from whisperq.core.leases import LastCall, Lease, Verdict, on_delivery
from whisperq.transcriber.context import WorkerContext
from whisperq.transcriber.endings import notify, remove_outputs
from whisperq.transcriber.heartbeat import Heartbeat
from whisperq.transcriber.messages import Delivery, iso_from_ms


class LeaseStillHeld(TransientError):
    """Our own message came back while its holder's lease lives: it returns when the lease runs out."""


class LeaseLost(TransientError):
    """A newer attempt took over our lease (we were slower than the lease) and came with our own
    message, under a newer receipt. SQS documents that a delete by an older receipt "might not" delete
    the message; if it did, and that attempt then died, nothing would bring the work back. So the
    message is left alone (an item failure): it returns only if its holder dies."""


NOT_HELD = (ConditionFailed, ChunkNotTaken)
Taken = TypeVar("Taken", Job, ChunkRecord)  # what taking a lease gives: the job, or the chunk's record
Taken_co = TypeVar("Taken_co", Job, ChunkRecord, covariant=True)


class Lessor(Protocol[Taken_co]):
    """The table side of one piece of work's lease."""

    what: str  # how messages and errors name the work ("transcription", "chunk 2 of 6 (...)", "the merge")
    after_dead_letter: str  # what a person can do once its message is dead-lettered

    def take(self, lease: Lease, replacing: Lease | None) -> Taken_co:
        """Take the lease (from `replacing`, seen run out, or from nobody); raises one of NOT_HELD."""

    def renew(self, lease: Lease) -> None: ...

    def release(self, lease: Lease, reason: str) -> None:
        """Let the next delivery take the work at once."""

    def give_up(self, lease: Lease, error: str, last_error: str | None, dead_lettered: bool) -> None:
        """End the job FAILED with `error` (and the last attempt's own error)."""


class JobLessor:
    """A whole job's lease: taking it moves the job to PROCESSING and counts an attempt."""

    what = "transcription"
    after_dead_letter = ("The upload's message was moved to the dead-letter queue, where an operator can "
                         "inspect it")

    def __init__(self, context: WorkerContext, job_id: str, delivery: Delivery):
        self.context, self.job_id, self.delivery = context, job_id, delivery

    def take(self, lease: Lease, replacing: Lease | None) -> Job:
        delivery = self.delivery
        enqueued = iso_from_ms(delivery.sent_timestamp_ms) if delivery.sent_timestamp_ms else None
        wait_s = round(max(0.0, time.time() - delivery.sent_timestamp_ms / 1000), 3) \
            if delivery.sent_timestamp_ms is not None else None
        return self.context.leases.take(self.job_id, lease, replacing, delivery.receive_count,
                                        Timeline(enqueued_at=enqueued, started_at=iso(utc_now())), wait_s,
                                        last_call_of(self.context, delivery))

    def renew(self, lease: Lease) -> None:
        self.context.leases.renew(self.job_id, lease)

    def release(self, lease: Lease, reason: str) -> None:
        self.context.leases.release(self.job_id, lease, reason)

    def give_up(self, lease: Lease, error: str, last_error: str | None, dead_lettered: bool) -> None:
        job = self.context.leases.fail(self.job_id, lease, error, last_error=last_error, dead_lettered=dead_lettered)
        self.context.metrics.add_metric("JobsFailed", "Count", 1)
        notify(self.context, job)


class MergeLessor(JobLessor):
    """A fanned-out job's lease for its merge: taken only when every chunk is done."""

    what = "the merge"

    def __init__(self, context: WorkerContext, job_id: str, delivery: Delivery):
        super().__init__(context, job_id, delivery)
        self.after_dead_letter = (f"Its message was moved to the dead-letter queue; `whisperq dlq replay --job "
                                  f"{job_id}` merges the finished chunks again")

    def take(self, lease: Lease, replacing: Lease | None) -> Job:
        return self.context.leases.claim_merge(self.job_id, lease, replacing, last_call_of(self.context, self.delivery))


class ChunkLessor:
    """One chunk's lease, in the chunk's own item; failing for good ends its whole job FAILED."""

    def __init__(self, context: WorkerContext, job_id: str, chunk: Chunk, count: int, delivery: Delivery):
        self.context, self.job_id, self.chunk, self.delivery = context, job_id, chunk, delivery
        self.what = f"chunk {chunk.index + 1} of {count} ({chunk.start_s:.1f}-{chunk.end_s:.1f} s)"
        self.after_dead_letter = (f"Its message was moved to the dead-letter queue; `whisperq dlq replay --job "
                                  f"{job_id}` resumes the job without redoing the finished chunks")

    def take(self, lease: Lease, replacing: Lease | None) -> ChunkRecord:
        return self.context.chunks.take(self.job_id, self.chunk.index, lease, replacing,
                                        last_call_of(self.context, self.delivery))

    def renew(self, lease: Lease) -> None:
        self.context.chunks.renew(self.job_id, self.chunk.index, lease)

    def release(self, lease: Lease, reason: str) -> None:
        self.context.chunks.release(self.job_id, self.chunk.index, lease)

    def give_up(self, lease: Lease, error: str, last_error: str | None, dead_lettered: bool) -> None:
        # The job is nobody's to hold (its chunks carry it): fail it, together with dropping our chunk
        # lease, only while we hold the chunk and it is not done; a second failing chunk finds it FAILED.
        job = self.context.chunks.fail_job(self.job_id, self.chunk.index, lease, failing(
            error, last_error or error, dead_lettered, failed_chunk=self.chunk.index))
        if job is not None:
            self.context.metrics.add_metric("JobsFailed", "Count", 1)
            notify(self.context, job)


def last_call_of(context: WorkerContext, delivery: Delivery) -> LastCall | None:
    """The note a take leaves when its delivery is the last the queue allows (see transcriber/last_call.py);
    a take by any other delivery removes an earlier message's note: that message no longer carries the work."""
    return LastCall.of(delivery.message_id, delivery.receive_count, context.settings.queue.max_receive_count,
                       time.time())


class Attempt(Generic[Taken]):
    """One delivery's attempt at one piece of work (see the module docstring)."""

    def __init__(self, context: WorkerContext, lessor: Lessor[Taken], delivery: Delivery):
        self.context = context
        self.lessor: Lessor[Taken] = lessor
        self.delivery = delivery
        self.lease: Lease | None = None
        self._retries_before = context.retries.count

    def begin(self, holder: Lease | None) -> Taken | None:
        """Take the lease from `holder` (None: nobody holds it); what the lessor's take returned, or None
        when this delivery should be acknowledged without work (a duplicate, or another delivery took it
        first). Raises LeaseStillHeld when our own message came back while its holder's lease lives."""
        now = time.time()
        verdict = on_delivery(holder, self.delivery.message_id, now)
        if verdict is Verdict.DUPLICATE:
            self.context.log.info(f"{self.lessor.what} is leased by another worker; acknowledging duplicate")
            return None
        if verdict is Verdict.HAND_BACK:
            assert holder is not None
            self.context.queue.return_after(self.delivery, holder.left_s(now))
            raise LeaseStillHeld(f"{self.lessor.what} is still leased by an earlier attempt for "
                                 f"{holder.left_s(now):.1f} s; its message returns when the lease runs out")
        lease = Lease.new(self.delivery.message_id, self.context.lease_s, now)
        try:
            taken = self.lessor.take(lease, holder)
        except NOT_HELD:
            self.context.log.info(f"{self.lessor.what} was taken by another delivery; acknowledging")
            return None
        self.lease = lease
        self._retries_before = self.context.retries.count
        return taken

    @property
    def held(self) -> Lease:
        assert self.lease is not None, "begin() first"
        return self.lease

    @property
    def retries(self) -> int:
        """AWS calls retried during this attempt."""
        return self.context.retries.count - self._retries_before

    def heartbeat(self) -> Heartbeat:
        """While the block runs: extend the message's visibility and renew the lease, in time."""

        def beat() -> None:
            self.context.queue.extend(self.delivery, self.context.lease_s)
            renewed = self.held.renewed(self.context.lease_s, time.time())
            self.lessor.renew(renewed)
            self.lease = renewed

        return Heartbeat(self.context.heartbeat_s, beat, self.context.log)

    def lost(self, job: Job, holder: Lease | None) -> str:
        """A write under our lease did not hold. `job` is the job as it is now, `holder` whoever holds our
        work now. The job ended (a cancelled one: remove what we wrote late), or a holder that came with
        another message does the work: acknowledge. A holder of our own message (or none we can see):
        raise LeaseLost, and the message is left to it."""
        if job.status is JobStatus.CANCELLED:
            self.context.log.info("job was cancelled while running; removing what it wrote")
            remove_outputs(self.context, job.job_id)
        if job.status.is_final:
            return f"skipped:{job.status.value}"
        if holder is not None and holder.message_id not in (None, self.delivery.message_id):
            self.context.log.info(f"lost the lease of {self.lessor.what} to another message's holder; acknowledging")
            return "skipped:lease-lost"
        self.context.log.warning(f"lost the lease of {self.lessor.what}; leaving its message to the newer attempt")
        raise LeaseLost(f"{self.lessor.what} of job {job.job_id}: a newer attempt holds its lease; "
                        "its message is left to it")

    def failed(self, exc: BaseException) -> None:
        """A retryable failure: release the work for the message's next delivery or, on the last
        delivery the queue allows, end the job FAILED with the reason. The caller re-raises, so that
        SQS delivers the message again or dead-letters it."""
        reason = f"{type(exc).__name__}: {exc}"
        max_receives = self.context.settings.queue.max_receive_count
        self.context.metrics.add_metric("AttemptsFailed", "Count", 1)
        self.context.log.exception("attempt failed", extra={"receive_count": self.delivery.receive_count})
        try:
            if self.delivery.receive_count >= max_receives:
                self.lessor.give_up(self.held, f"{self.lessor.what} failed on all {max_receives} attempts; "
                                               f"last error: {reason}. {self.lessor.after_dead_letter}", reason, True)
            else:
                self.lessor.release(self.held, reason)
        except (WhisperqError, *NOT_HELD) as bookkeeping_error:
            # The message still returns after its visibility timeout; the lease then runs out.
            self.context.log.warning("could not record the failed attempt", extra={"error": str(bookkeeping_error)})

    def refused(self, exc: ConditionFailed | ChunkNotTaken) -> str:
        """A write under our lease was refused: the outcome, or LeaseLost (see lost)."""
        if isinstance(exc, ConditionFailed):
            return self.lost(exc.job, exc.job.lease)
        if exc.chunk.done_by and exc.chunk.done_by != self.held.id:
            return "skipped:chunk-done"  # another attempt counted it
        return self.lost(exc.job or self.context.jobs.get(exc.chunk.job_id), exc.chunk.lease)

    def ended_by(self, exc: Exception, what: str | None = None) -> str:
        """How an attempt that raised `exc` ends; called from its `except`. Not transcribable however often
        we try (InvalidRequest: options stored at creation that this worker's model cannot honour;
        PermanentJobError): FAILED with the reason (after `what`), and acknowledged. Our lease gone
        (LeaseLost): re-raised as it is. Anything else: `failed`, then re-raised for SQS to deliver again."""
        if isinstance(exc, InvalidRequest | PermanentJobError):
            return self.failed_for_good(f"{what}: {exc.message}" if what else exc.message)
        if not isinstance(exc, LeaseLost):
            self.failed(exc)
        raise exc

    def failed_for_good(self, reason: str) -> str:
        """Not transcribable however often we try: the job ends FAILED with the reason ("failed"), unless
        our lease went meanwhile (see refused)."""
        self.context.log.warning("job failed permanently", extra={"error": reason})
        try:
            self.lessor.give_up(self.held, reason, None, False)
        except NOT_HELD as exc:
            return self.refused(exc)
        return "failed"
