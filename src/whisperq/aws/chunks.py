"""The chunks of fanned-out jobs, each in an item of its own (job id + chunk index) in the chunks table.

A chunk has a lease, taken with a conditional write as a whole job's is, and a done mark: the lease
under which it was counted (its result's key names that lease). Counting a chunk done is one
transaction that sets the mark and adds one to its job's `chunksDone`: a chunk is counted once however
often its message arrives, and its job's counter never moves without it. A chunk write stays the size
of one chunk's item, however long the job."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from whisperq.aws.clients import Clients
from whisperq.aws.errors import as_core_error, error_code
from whisperq.aws.expressions import Update
from whisperq.aws.job_items import LEASE_NAMES, item_to_chunk, lease_attributes
from whisperq.aws.jobs_table import JobsTable
from whisperq.aws.retry import RetryPolicy
from whisperq.core.errors import TransientError, WhisperqError
from whisperq.core.jobs import ChunkRecord, Job, JobStatus, iso, utc_now
from whisperq.core.leases import Lease

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
                response = self.retry.call("read chunks", lambda kw=dict(kwargs): self._ddb.query(**kw))
            except (ClientError, BotoCoreError) as exc:
                raise as_core_error(exc, f"reading the chunks of job {job_id}") from exc
            chunks.extend(item_to_chunk(item) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return sorted(chunks, key=lambda chunk: chunk.index)
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def take(self, job_id: str, index: int, lease: Lease, replacing: Lease | None) -> ChunkRecord:
        """Lease the chunk: not done, and nobody holds it but one whose lease (`replacing`, seen run
        out) has not changed since; ChunkNotTaken otherwise."""
        update = Update().set(lease_attributes(lease)).add({"attempts": 1})
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

    def _write(self, job_id: str, index: int, update: Update, landed: Any) -> ChunkRecord:
        attempt = 0

        def once() -> ChunkRecord:
            nonlocal attempt
            attempt += 1
            try:
                response = self._ddb.update_item(TableName=self.table_name, Key=self._key(job_id, index),
                                                 ReturnValues="ALL_NEW", **update.request())
                return item_to_chunk(response["Attributes"])
            except ClientError as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise as_core_error(exc, f"updating chunk {index} of job {job_id}") from exc
            except BotoCoreError as exc:
                raise as_core_error(exc, f"updating chunk {index} of job {job_id}") from exc
            current = self._get(job_id, index)
            if attempt > 1 and landed(current):  # an earlier try of ours landed and its answer was lost
                return current
            raise ChunkNotTaken(current)

        return self.retry.call("update chunk", once)

    def count_done(self, job_id: str, index: int, lease: Lease, transcribe_s: float) -> Counted:
        """Mark the chunk done under our lease and add it to its job's count, in one transaction.

        Raises ChunkNotTaken when the lease was lost or the job ended (CANCELLED, COMPLETED)."""
        chunk = Update().set({"doneBy": lease.id, "transcribeS": round(transcribe_s, 4)}).remove(LEASE_NAMES)
        chunk.require(chunk.equals("leaseId", lease.id)).require(chunk.absent("doneBy"))
        job = Update().add({"chunksDone": 1, "chunksTranscribeS": round(transcribe_s, 4)})
        job.set({"updatedAt": iso(utc_now())}).require(job.one_of("status", [s.value for s in WORKABLE]))
        items = [{"Update": {"TableName": self.table_name, "Key": self._key(job_id, index), **chunk.request()}},
                 {"Update": {"TableName": self.jobs.table_name, "Key": {"jobId": {"S": job_id}}, **job.request()}}]
        attempt = 0

        def once() -> None:
            nonlocal attempt
            attempt += 1
            try:
                self._ddb.transact_write_items(TransactItems=items)
                return
            except ClientError as exc:
                if error_code(exc) != "TransactionCanceledException":
                    raise as_core_error(exc, f"counting chunk {index} of job {job_id} done") from exc
                reasons = {reason.get("Code") for reason in exc.response.get("CancellationReasons", [])}
                if reasons & _PASSING_REASONS:
                    raise TransientError(f"counting chunk {index} of job {job_id} done: {sorted(reasons)}") from exc
            except BotoCoreError as exc:
                raise as_core_error(exc, f"counting chunk {index} of job {job_id} done") from exc
            current = self._get(job_id, index)
            if current.done_by == lease.id:
                return  # an earlier try of ours counted it, and its answer was lost
            raise ChunkNotTaken(current, self.jobs.get(job_id))

        self.retry.call("count chunk done", once)
        # Whoever reads the count at its total merges (the merge's own lease keeps that to one worker).
        return Counted(self.jobs.get(job_id))
