"""The DynamoDB jobs table: one item per job, every change a conditional write named for what it does.

The worker's writes under a lease (take, renew, commit, complete...) are in aws/job_leases.py; both
build their expressions with aws/expressions.py and read items through aws/job_items.py."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from whisperq.aws.clients import Clients
from whisperq.aws.cursors import decode_cursor, encode_cursor
from whisperq.aws.errors import as_core_error, error_code
from whisperq.aws.expressions import Update
from whisperq.aws.job_items import LAST_CALL_NAMES, LEASE_NAMES, item_to_job, job_to_item
from whisperq.aws.retry import RetryPolicy, call_conditional
from whisperq.core.errors import InvalidTransition, JobNotFound, TransientError, WhisperqError
from whisperq.core.jobs import DEFAULT_OWNER, Job, JobStatus, iso, sources_of, utc_now

# The owner's jobs, newest first (every job), and the open ones only: a sparse index, because only
# a job that is not final carries OPEN_ATTRIBUTE (its owner). An observer that follows thousands of
# jobs queries what is still open, not everything it ever made.
OWNER_INDEX = "owner-createdAt"
OPEN_INDEX = "openOwner-createdAt"
OPEN_ATTRIBUTE = "openOwner"
BATCH_GET_MAX = 100  # DynamoDB's BatchGetItem limit


class JobIdTaken(WhisperqError):
    """A new job's id is already in the table."""


class ConditionFailed(InvalidTransition):
    """A conditional write's condition did not hold; `job` is the job as it is now."""

    def __init__(self, job: Job, wanted: str):
        super().__init__(job.job_id, job.status.value, wanted)
        self.job = job


class JobsTable:
    """Reads and conditionally writes jobs."""

    def __init__(self, clients: Clients, table_name: str, retry: RetryPolicy | None = None):
        self._clients = clients
        self.table_name = table_name
        self.retry = retry or RetryPolicy()

    @property
    def clients(self) -> Clients:
        return self._clients

    @property
    def _ddb(self) -> Any:
        return self._clients.dynamodb

    def create(self, job: Job) -> Job:
        """Store a new job; fails if the id is taken (it never should be: ids are uuid4).

        Retry-safe: when an earlier attempt stored the job but its answer was lost, the retry's
        failed condition finds this very job (same item) and counts as success."""

        def ours(exc: Exception) -> Job | None:
            stored = self._get(job.job_id)
            same = (stored.created_at, stored.audio_key, stored.owner) == (job.created_at, job.audio_key, job.owner)
            return job if same else None

        return call_conditional(self.retry, "create job", lambda: self._create(job), JobIdTaken, ours)

    def _create(self, job: Job) -> Job:
        try:
            self._ddb.put_item(
                TableName=self.table_name,
                Item=_with_open(job_to_item(job), job),
                ConditionExpression="attribute_not_exists(jobId)",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise JobIdTaken(f"job id {job.job_id} is already taken") from exc
            raise as_core_error(exc, f"storing job {job.job_id}") from exc
        except BotoCoreError as exc:
            raise as_core_error(exc, f"storing job {job.job_id}") from exc
        return job

    def get(self, job_id: str) -> Job:
        """The job with this id, read consistently, or JobNotFound."""
        return self.retry.call("read job", lambda: self._get(job_id))

    def status_of(self, job_id: str) -> JobStatus:
        """Only the job's status, read consistently: a cheap read for a caller that polls."""
        return self.retry.call("read job status", lambda: JobStatus(self._item(
            job_id, ProjectionExpression="#s", ExpressionAttributeNames={"#s": "status"})["status"]["S"]))

    def _get(self, job_id: str) -> Job:
        return item_to_job(self._item(job_id))

    def _item(self, job_id: str, **projection: Any) -> dict[str, Any]:
        """The job's item (or the projected part of it), read consistently, or JobNotFound."""
        try:
            response = self._ddb.get_item(TableName=self.table_name, Key={"jobId": {"S": job_id}},
                                          ConsistentRead=True, **projection)
        except (ClientError, BotoCoreError) as exc:
            raise as_core_error(exc, f"reading job {job_id}") from exc
        if "Item" not in response:
            raise JobNotFound(job_id)
        item: dict[str, Any] = response["Item"]
        return item

    def list_by_owner(self, owner: str, limit: int, status: JobStatus | None = None,
                      cursor: str | None = None, index: str = OWNER_INDEX) -> tuple[list[Job], str | None]:
        """A page of an owner's jobs, newest first (a query of the owner index, never a scan), and the
        cursor of the next page (None on the last)."""
        start = decode_cursor(cursor, owner) if cursor else None
        jobs: list[Job] = []
        more = True
        while more and len(jobs) < limit:
            kwargs: dict[str, Any] = {
                "TableName": self.table_name,
                "IndexName": index,
                "KeyConditionExpression": "#owner = :owner",
                "ExpressionAttributeNames": {"#owner": "owner"},
                "ExpressionAttributeValues": {":owner": {"S": owner}},
                "ScanIndexForward": False,
                "Limit": limit - len(jobs),
            }
            if status is not None:
                kwargs["FilterExpression"] = "#status = :status"
                kwargs["ExpressionAttributeNames"]["#status"] = "status"
                kwargs["ExpressionAttributeValues"][":status"] = {"S": status.value}
            if start:
                kwargs["ExclusiveStartKey"] = {k: {"S": v} for k, v in start.items()}
            try:
                response = self.retry.call("list jobs", functools.partial(self._ddb.query, **kwargs))
            except (ClientError, BotoCoreError) as exc:
                raise as_core_error(exc, "listing jobs") from exc
            jobs.extend(item_to_job(item) for item in response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            more = last is not None
            start = {k: v["S"] for k, v in last.items()} if last else None
        next_cursor = None
        if more and jobs:
            tail = jobs[-1]
            next_cursor = encode_cursor({"jobId": tail.job_id, "owner": owner, "createdAt": tail.created_at})
        return jobs, next_cursor

    def list_open(self, owner: str) -> dict[str, JobStatus]:
        """Every open (not final) job of an owner and its status, from the sparse open index: the
        cost follows the open jobs, not all the owner's. The index is eventually consistent: a job
        just created may be missing and one just finished may linger; read those with get_many."""
        found: dict[str, JobStatus] = {}
        kwargs: dict[str, Any] = {
            "TableName": self.table_name, "IndexName": OPEN_INDEX,
            "KeyConditionExpression": "#open = :owner", "ProjectionExpression": "jobId, #status",
            "ExpressionAttributeNames": {"#open": OPEN_ATTRIBUTE, "#status": "status"},
            "ExpressionAttributeValues": {":owner": {"S": owner}},
        }
        while True:
            try:
                response = self.retry.call("list open jobs", functools.partial(self._ddb.query, **kwargs))
            except (ClientError, BotoCoreError) as exc:
                raise as_core_error(exc, "listing open jobs") from exc
            for item in response.get("Items", []):
                found[item["jobId"]["S"]] = JobStatus(item["status"]["S"])
            if "LastEvaluatedKey" not in response:
                return found
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def open_job_ids(self) -> list[str]:
        """Every open (not final) job's id, whoever owns it: a scan of the sparse open index, so the
        cost follows the jobs in flight, not the table (the reaper's once-a-minute look)."""
        found: list[str] = []
        kwargs: dict[str, Any] = {"TableName": self.table_name, "IndexName": OPEN_INDEX,
                                  "ProjectionExpression": "jobId"}
        while True:
            try:
                response = self.retry.call("scan open jobs", functools.partial(self._ddb.scan, **kwargs))
            except (ClientError, BotoCoreError) as exc:
                raise as_core_error(exc, "scanning the open jobs") from exc
            found.extend(item["jobId"]["S"] for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                return found
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def get_many(self, job_ids: Iterable[str]) -> list[Job]:
        """The jobs with these ids that exist, read consistently, BATCH_GET_MAX to a request (keys
        DynamoDB leaves unprocessed are asked for again, with the retry policy's backoff)."""
        wanted = list(dict.fromkeys(job_ids))
        jobs: list[Job] = []
        for start in range(0, len(wanted), BATCH_GET_MAX):
            keys = [{"jobId": {"S": job_id}} for job_id in wanted[start:start + BATCH_GET_MAX]]

            def once(keys: list[dict[str, Any]] = keys) -> None:
                try:
                    response = self._ddb.batch_get_item(
                        RequestItems={self.table_name: {"Keys": keys, "ConsistentRead": True}})
                except (ClientError, BotoCoreError) as exc:
                    raise as_core_error(exc, "reading jobs") from exc
                jobs.extend(item_to_job(item) for item in response["Responses"].get(self.table_name, []))
                left = response.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", [])
                keys[:] = left
                if left:
                    raise TransientError(f"{len(left)} of the jobs were not read (throttled); asking again")

            self.retry.call("read jobs", once)
        return jobs

    # --- moves the API and the operator make ----------------------------------------------
    def mark_queued(self, job_id: str, enqueued_at: str | None = None) -> Job:
        """UPLOADING -> QUEUED: the audio arrived (its S3 event waits in the queue)."""
        update = Update()
        if enqueued_at:
            update.set({"enqueuedAt": enqueued_at})
        # Idempotent: whoever marked it QUEUED, it is.
        return self.move(job_id, JobStatus.QUEUED, [JobStatus.UPLOADING], update, lambda job: True)

    def fail_without_audio(self, job_id: str, reason: str) -> Job:
        """UPLOADING -> FAILED: its audio never came (the upload expired, the copy or the fetch failed); or
        QUEUED -> FAILED, for the fetch of a job a replay revived."""
        return self.move(job_id, JobStatus.FAILED, [JobStatus.UPLOADING, JobStatus.QUEUED],
                         Update().set({"error": reason, "failedAt": iso(utc_now())}), lambda job: job.error == reason)

    def cancel(self, job_id: str) -> Job:
        """A job that has not ended -> CANCELLED; its workers stop at their next write."""
        return self.move(job_id, JobStatus.CANCELLED, [JobStatus.UPLOADING, JobStatus.QUEUED, JobStatus.PROCESSING],
                         Update().set({"cancelledAt": iso(utc_now())}), lambda job: True)

    def revive(self, job_id: str) -> Job:
        """FAILED -> QUEUED, for a replay of its dead-lettered message (the only way back from FAILED)."""
        # It is not failed any more; its last attempts' leases (run out) and the failed chunk go too.
        update = Update().set({"replayedAt": iso(utc_now())})
        update.remove(["error", "deadLettered", "failedAt", "failedChunk", *LEASE_NAMES, *LAST_CALL_NAMES])
        return self.move(job_id, JobStatus.QUEUED, [JobStatus.FAILED], update, lambda job: True)

    def replayed_open(self, job_id: str) -> Job:
        """A replay moved back the message of a job still open (its worker died with the message's last
        delivery, and the reaper has not ended it yet): the notes of that delivery no longer stand (the
        reaper ignores older ones), so the job waits for the message as it is."""
        update = Update().set({"replayedAt": iso(utc_now())}).remove(LAST_CALL_NAMES)
        update.require(update.exists("jobId"))
        return self.write(job_id, "mark replayed", update, lambda job: job.last_call is None)

    def set_callback_status(self, job_id: str, outcome: str) -> None:
        """Record how the job's callback went (bookkeeping: the job's outcome stands)."""
        update = Update().set({"callbackStatus": outcome})
        self.retry.call("record callback", lambda: self.apply(job_id, "record its callback", update))

    # --- the conditional write ------------------------------------------------------------
    def move(self, job_id: str, target: JobStatus, expected: Iterable[JobStatus], update: Update,
             landed: Callable[[Job], bool]) -> Job:
        """Move the job to `target` if its status is one of `expected` and `update`'s own conditions
        hold, in one write with `update`'s changes (see `write` for `landed`)."""
        return self.write(job_id, target.value, self.moving(update, target, expected),
                          lambda job: job.status is target and landed(job))

    @staticmethod
    def moving(update: Update, target: JobStatus, expected: Iterable[JobStatus]) -> Update:
        """`update`, made to move its job to `target` from one of `expected` (keeping the open index)."""
        allowed = sorted(set(expected))
        if not set(allowed) <= sources_of(target) | {target}:
            raise ValueError(f"no job moves from {', '.join(allowed)} to {target.value}")
        update.set({"status": target.value, "updatedAt": iso(utc_now())})
        update.require(update.exists("jobId")).require(update.one_of("status", [s.value for s in allowed]))
        if target.is_final:
            update.remove([OPEN_ATTRIBUTE])  # out of the open index
        elif any(status.is_final for status in allowed):  # a revival: back in the open index
            update.set_from(OPEN_ATTRIBUTE, "owner", DEFAULT_OWNER)
        return update

    def write(self, job_id: str, wanted: str, update: Update, landed: Callable[[Job], bool]) -> Job:
        """`apply` with the retry policy. A retry refused because the first try landed (its answer was
        lost) returns the job when `landed` recognises that try in it: a mark only that try could have
        left (its lease id, its key), never just a status another writer could have set."""
        def ours(exc: ConditionFailed) -> Job | None:
            return exc.job if landed(exc.job) else None

        return call_conditional(self.retry, wanted, lambda: self.apply(job_id, wanted, update), ConditionFailed, ours)

    def apply(self, job_id: str, wanted: str, update: Update) -> Job:
        """One conditional UpdateItem (not retried) and the job after it; ConditionFailed with the job as
        it is when a condition did not hold, JobNotFound when there is no such job."""
        try:
            response = self._ddb.update_item(TableName=self.table_name, Key={"jobId": {"S": job_id}},
                                             ReturnValues="ALL_NEW", **update.request())
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise ConditionFailed(self._get(job_id), wanted) from exc  # _get: JobNotFound for no such job
            raise as_core_error(exc, f"updating job {job_id}") from exc
        except BotoCoreError as exc:
            raise as_core_error(exc, f"updating job {job_id}") from exc
        return item_to_job(response["Attributes"])


def _with_open(item: dict[str, Any], job: Job) -> dict[str, Any]:
    """A new job's item, in the open index unless it is created final."""
    if not job.status.is_final:
        item[OPEN_ATTRIBUTE] = {"S": job.owner}
    return item
