"""The chunks of fanned-out jobs, each in an item of its own (job id + chunk index) in the chunks table.

A chunk has a lease, taken with a conditional write as a whole job's is, and a done mark: the lease
under which it was counted (its result's key names that lease). Counting a chunk done is one
transaction that sets the mark and adds one to its job's `chunksDone`: a chunk is counted once however
often its message arrives, and its job's counter never moves without it. A chunk write stays the size
of one chunk's item, however long the job."""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from whisperq.aws.clients import Clients
from whisperq.aws.errors import as_core_error, error_code
from whisperq.aws.expressions import Update
from whisperq.aws.job_items import LAST_CALL_NAMES, LEASE_NAMES, item_to_chunk, lease_attributes, with_last_call
from whisperq.aws.jobs_table import JobsTable
from whisperq.aws.retry import RetryPolicy, call_conditional
from whisperq.core.errors import TransientError, WhisperqError
from whisperq.core.jobs import ChunkRecord, Job, JobStatus, iso, utc_now
from whisperq.core.leases import LastCall, Lease

# A chunk may be worked on while its job is PROCESSING, or FAILED because another chunk was
# dead-lettered (so that a replay of that chunk finds the rest done), or QUEUED after a replay.
WORKABLE = (JobStatus.QUEUED, JobStatus.PROCESSING, JobStatus.FAILED)
# Reasons DynamoDB cancels a transaction for that may pass when it is sent again.
_PASSING_REASONS = {"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}


class ChunkNotTaken(WhisperqError):
    """The chunk could not be leased or counted: done, leased by another attempt, or its job is over."""

    def __init__(self, chunk: ChunkRecord, job: Job | None = None):
        state = (f"done by {chunk.done_by}" if chunk.done_by
                 else f"leased by {chunk.lease.id}" if chunk.lease else "free")
        super().__init__(f"chunk {chunk.index} of job {chunk.job_id} is {state}"
                         + (f" (job {job.status.value})" if job else ""))
        self.chunk = chunk
        self.job = job


@dataclass(frozen=True)
class Counted:
    """The job after a chunk was counted done; `last` when every chunk now is."""

    job: Job

    @property
    def last(self) -> bool:
        return self.job.fanout is not None and self.job.fanout.all_done


class ChunksTable:
    """Leases and done marks of chunks, and the count on their jobs."""

    def __init__(self, clients: Clients, table_name: str, jobs: JobsTable, retention_s: int,
                 retry: RetryPolicy | None = None):
        self._clients = clients
        self.table_name = table_name
        self.jobs = jobs
        self.retention_s = retention_s  # chunk items expire (TTL) this long after their first lease
        self.retry = retry or jobs.retry

    @property
    def _ddb(self) -> Any:
        return self._clients.dynamodb

    @staticmethod
    def _key(job_id: str, index: int) -> dict[str, Any]:
        return {"jobId": {"S": job_id}, "chunk": {"N": str(index)}}

    def get(self, job_id: str, index: int) -> ChunkRecord:
        """The chunk's record, read consistently (a chunk nobody took yet has an empty one)."""
        return self.retry.call("read chunk", lambda: self._get(job_id, index))

    def _get(self, job_id: str, index: int) -> ChunkRecord:
        try:
            response = self._ddb.get_item(TableName=self.table_name, Key=self._key(job_id, index), ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise as_core_error(exc, f"reading chunk {index} of job {job_id}") from exc
        return item_to_chunk(response["Item"]) if "Item" in response else ChunkRecord(job_id, index)

    def all(self, job_id: str) -> list[ChunkRecord]:
        """Every chunk of the job that was ever taken, in order, read consistently."""
        kwargs: dict[str, Any] = {"TableName": self.table_name, "ConsistentRead": True,
                                  "KeyConditionExpression": "jobId = :job", "ExpressionAttributeValues":
                                  {":job": {"S": job_id}}}
        chunks: list[ChunkRecord] = []
        while True:
            try:
                response = self.retry.call("read chunks", functools.partial(self._ddb.query, **kwargs))
            except (ClientError, BotoCoreError) as exc:
                raise as_core_error(exc, f"reading the chunks of job {job_id}") from exc
            chunks.extend(item_to_chunk(item) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return sorted(chunks, key=lambda chunk: chunk.index)
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def take(self, job_id: str, index: int, lease: Lease, replacing: Lease | None,
             last_call: LastCall | None = None) -> ChunkRecord:
        """Lease the chunk: not done, and nobody holds it but one whose lease (`replacing`, seen run
        out) has not changed since; ChunkNotTaken otherwise."""
        update = with_last_call(Update().set(lease_attributes(lease)).add({"attempts": 1}), last_call)
        update.set_if_absent({"expiresAt": int(time.time()) + self.retention_s})
        update.require(update.absent("doneBy"))
        update.require(update.equals("leaseId", replacing.id) if replacing else update.absent("leaseId"))
        return self._write(job_id, index, update, lambda chunk: chunk.lease is not None and chunk.lease.id == lease.id)

    def renew(self, job_id: str, index: int, lease: Lease) -> None:
        """Push the chunk's lease on to `lease.expires_at` while it is worked on (the heartbeat)."""
        update = Update().set({"leaseExpiresAt": lease.expires_at})
        update.require(update.equals("leaseId", lease.id))
        self._write(job_id, index, update, lambda chunk: chunk.lease is not None and chunk.lease.id == lease.id)

    def release(self, job_id: str, index: int, lease: Lease) -> None:
        """Drop our lease after a failed attempt, so that the message's next delivery can take it at once."""
        update = Update().remove(LEASE_NAMES)
        update.require(update.equals("leaseId", lease.id))
        with contextlib.suppress(ChunkNotTaken):
            self._write(job_id, index, update, lambda chunk: chunk.lease is None or chunk.lease.id != lease.id)

    def _write(self, job_id: str, index: int, update: Update, landed: Callable[[ChunkRecord], bool]) -> ChunkRecord:
        def once() -> ChunkRecord:
            try:
                response = self._ddb.update_item(TableName=self.table_name, Key=self._key(job_id, index),
                                                 ReturnValues="ALL_NEW", **update.request())
                return item_to_chunk(response["Attributes"])
            except ClientError as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise as_core_error(exc, f"updating chunk {index} of job {job_id}") from exc
            except BotoCoreError as exc:
                raise as_core_error(exc, f"updating chunk {index} of job {job_id}") from exc
            raise ChunkNotTaken(self._get(job_id, index))

        return call_conditional(self.retry, "update chunk", once, ChunkNotTaken,
                                lambda exc: exc.chunk if landed(exc.chunk) else None)

    def count_done(self, job_id: str, index: int, lease: Lease, transcribe_s: float) -> Counted:
        """Mark the chunk done under our lease and add it to its job's count, in one transaction.

        Raises ChunkNotTaken when the lease was lost or the job ended (CANCELLED, COMPLETED)."""
        chunk = Update().set({"doneBy": lease.id, "transcribeS": round(transcribe_s, 4)}).remove(LEASE_NAMES)
        chunk.require(chunk.equals("leaseId", lease.id)).require(chunk.absent("doneBy"))
        job = Update().add({"chunksDone": 1, "chunksTranscribeS": round(transcribe_s, 4)})
        job.set({"updatedAt": iso(utc_now())}).require(job.one_of("status", [s.value for s in WORKABLE]))
        self._transact(job_id, index, chunk, job, "count chunk done", lambda chunk: chunk.done_by == lease.id)
        # Whoever reads the count at its total merges (the merge's own lease keeps that to one worker).
        return Counted(self.jobs.get(job_id))

    def fail_job(self, job_id: str, index: int, lease: Lease, failing: Update) -> Job | None:
        """A chunk that failed for good ends its job FAILED (`failing`'s changes), in one transaction with
        dropping the chunk's lease: only while we still hold the chunk and it is not done (ChunkNotTaken
        otherwise), and only a job still QUEUED or PROCESSING. The job after, or None when the job was
        not there to fail (a second failing chunk finds it FAILED already): the lease is dropped alone."""
        chunk = Update().remove(LEASE_NAMES)
        chunk.require(chunk.equals("leaseId", lease.id)).require(chunk.absent("doneBy"))
        job = self.jobs.moving(failing, JobStatus.FAILED, [JobStatus.QUEUED, JobStatus.PROCESSING])
        try:
            self._transact(job_id, index, chunk, job, "fail job for its chunk", lambda chunk: False)
        except ChunkNotTaken as exc:
            held = exc.chunk.lease is not None and exc.chunk.lease.id == lease.id and not exc.chunk.done_by
            if not held:
                raise
            self.release(job_id, index, lease)
            return None
        return self.jobs.get(job_id)

    def reap_job(self, job_id: str, index: int, message_id: str, now: float, job: Update) -> bool:
        """End the job (`job`: JobsTable.moving's update to FAILED) for a chunk whose last call was left
        behind, in one transaction with a condition on the chunk: the note still that message's, the
        chunk not done and held by no live lease. False when something changed (nothing is written)."""
        chunk = Update().remove(LAST_CALL_NAMES)
        chunk.require(chunk.equals("lastCallMessageId", message_id)).require(chunk.absent("doneBy"))
        chunk.require(Update.either(chunk.absent("leaseId"), chunk.below("leaseExpiresAt", now)))
        try:
            self._transact(job_id, index, chunk, job, "fail job for its stranded chunk", lambda chunk: False)
        except ChunkNotTaken:
            return False
        return True

    def _transact(self, job_id: str, index: int, chunk: Update, job: Update, what: str,
                  landed: Callable[[ChunkRecord], bool]) -> None:
        """One transaction: `chunk` on the chunk's item and `job` on its job's, both or neither. A
        refusal raises ChunkNotTaken with both as they are now, unless `landed` recognises an earlier
        try of ours in the chunk (its answer lost)."""
        items = [{"Update": {"TableName": self.table_name, "Key": self._key(job_id, index), **chunk.request()}},
                 {"Update": {"TableName": self.jobs.table_name, "Key": {"jobId": {"S": job_id}}, **job.request()}}]

        def once() -> None:
            try:
                self._ddb.transact_write_items(TransactItems=items)
                return
            except ClientError as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise as_core_error(exc, f"{what}: chunk {index} of job {job_id}") from exc
                reasons = {reason.get("Code") for reason in exc.response.get("CancellationReasons", [])}
                if reasons & _PASSING_REASONS:
                    raise TransientError(f"{what}: chunk {index} of job {job_id}: {sorted(reasons)}") from exc
            except BotoCoreError as exc:
                raise as_core_error(exc, f"{what}: chunk {index} of job {job_id}") from exc
            raise ChunkNotTaken(self._get(job_id, index), self.jobs.get(job_id))

        call_conditional(self.retry, what, once, ChunkNotTaken,
                         lambda exc: True if landed(exc.chunk) else None)
