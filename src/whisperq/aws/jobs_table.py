"""The DynamoDB jobs table: one item per job, every status change a conditional write."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from whisperq.aws.clients import Clients
from whisperq.aws.cursors import decode_cursor, encode_cursor
from whisperq.aws.errors import as_core_error, error_code
from whisperq.aws.retry import RetryPolicy
from whisperq.core.errors import InvalidTransition, JobNotFound, TransientError, WhisperqError
from whisperq.core.jobs import DEFAULT_OWNER, Job, JobStatus, iso, sources_of, utc_now

# The owner's jobs, newest first (every job), and the open ones only: a sparse index, because only
# a job that is not final carries OPEN_ATTRIBUTE (its owner). An observer that follows thousands of
# jobs queries what is still open, not everything it ever made.
OWNER_INDEX = "owner-createdAt"
OPEN_INDEX = "openOwner-createdAt"
OPEN_ATTRIBUTE = "openOwner"
BATCH_GET_MAX = 100  # DynamoDB's BatchGetItem limit

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

# Attributes that map to Job fields; everything else on the item lands in Job.details.
_CORE_ATTRIBUTES = {
    "jobId": "job_id",
    "status": "status",
    "filename": "filename",
    "contentType": "content_type",
    "audioKey": "audio_key",
    "createdAt": "created_at",
    "updatedAt": "updated_at",
    "attempts": "attempts",
    "error": "error",
}


def _to_dynamo(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_dynamo(v) for v in value]
    return value


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    return value


def item_to_job(item: Mapping[str, Any]) -> Job:
    plain = {k: _from_dynamo(_deserializer.deserialize(v)) for k, v in item.items()}
    core = {field: plain.pop(attr) for attr, field in _CORE_ATTRIBUTES.items() if attr in plain}
    core["status"] = JobStatus(core["status"])
    core.setdefault("attempts", 0)
    return Job(**core, details=plain)


def job_to_item(job: Job) -> dict[str, Any]:
    plain: dict[str, Any] = dict(job.details)
    for attr, field in _CORE_ATTRIBUTES.items():
        value = getattr(job, field)
        if value is not None:
            plain[attr] = value.value if isinstance(value, JobStatus) else value
    return {k: _serializer.serialize(_to_dynamo(v)) for k, v in plain.items()}


class JobIdTaken(WhisperqError):
    """A new job's id is already in the table."""


class ConditionFailed(WhisperqError):
    """A conditional write's condition did not hold; `job` is the job as it is now."""

    def __init__(self, job: Job):
        super().__init__(f"the condition on job {job.job_id} did not hold (it is {job.status.value})")
        self.job = job


def set_clauses(fields: Mapping[str, Any], names: dict[str, str], values: dict[str, Any], tag: str) -> list[str]:
    """`#<tag>N = :<tag>N` for each field, its name and value added to the placeholders."""
    clauses = []
    for index, (attr, value) in enumerate(fields.items()):
        names[f"#{tag}{index}"] = attr
        values[f":{tag}{index}"] = value
        clauses.append(f"#{tag}{index} = :{tag}{index}")
    return clauses


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
        attempt = 0

        def once() -> Job:
            nonlocal attempt
            attempt += 1
            try:
                return self._create(job)
            except JobIdTaken:
                if attempt > 1:
                    stored = self._get(job.job_id)
                    if (stored.created_at, stored.audio_key, stored.details.get("owner")) == (
                            job.created_at, job.audio_key, job.details.get("owner")):
                        return job
                raise

        return self.retry.call("create job", once)

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
        return response["Item"]

    def set_fields(self, job_id: str, fields: Mapping[str, Any]) -> None:
        """Set attributes of an existing job without touching its status (bookkeeping only)."""
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":f{i}": _serializer.serialize(_to_dynamo(value)) for i, value in enumerate(fields.values())}

        def once() -> None:
            try:
                self._ddb.update_item(
                    TableName=self.table_name, Key={"jobId": {"S": job_id}},
                    UpdateExpression="SET " + ", ".join(f"{n} = :f{i}" for i, n in enumerate(names)),
                    ConditionExpression="attribute_exists(jobId)",
                    ExpressionAttributeNames=names, ExpressionAttributeValues=values,
                )
            except (ClientError, BotoCoreError) as exc:
                raise as_core_error(exc, f"updating job {job_id}") from exc

        self.retry.call("update job fields", once)

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
                response = self.retry.call("list jobs", lambda kw=kwargs: self._ddb.query(**kw))
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
                response = self.retry.call("list open jobs", lambda kw=dict(kwargs): self._ddb.query(**kw))
            except (ClientError, BotoCoreError) as exc:
                raise as_core_error(exc, "listing open jobs") from exc
            for item in response.get("Items", []):
                found[item["jobId"]["S"]] = JobStatus(item["status"]["S"])
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

    def transition(
        self,
        job_id: str,
        target: JobStatus,
        *,
        expected: Iterable[JobStatus] | None = None,
        changes: Mapping[str, Any] | None = None,
        remove: Iterable[str] = (),
        increment_attempts: bool = False,
        extra_condition: tuple[str, Mapping[str, Any]] | None = None,
    ) -> Job:
        """Move a job to `target` if, and only if, its current status is one of `expected`
        (by default every status allowed to move to `target`), in one conditional write.

        `changes` sets further attributes in the same write, `remove` deletes some, and
        `extra_condition` is a condition expression (with its values) that must also hold.
        Raises JobNotFound, or InvalidTransition with the status the job really has."""
        attempt = 0

        def once() -> Job:
            nonlocal attempt
            attempt += 1
            try:
                return self._transition(job_id, target, expected, changes, remove, increment_attempts,
                                        extra_condition)
            except InvalidTransition:
                if attempt > 1:
                    # An earlier attempt may have written before its answer was lost.
                    current = self._get(job_id)
                    if current.status is target and all(current.details.get(k, getattr(current, k, None)) == v
                                                        for k, v in (changes or {}).items()):
                        return current
                raise

        return self.retry.call(f"update job to {target.value}", once)

    def _transition(
        self,
        job_id: str,
        target: JobStatus,
        expected: Iterable[JobStatus] | None,
        changes: Mapping[str, Any] | None,
        remove: Iterable[str],
        increment_attempts: bool,
        extra_condition: tuple[str, Mapping[str, Any]] | None,
    ) -> Job:
        allowed = sorted(set(expected) if expected is not None else sources_of(target))
        names = {"#status": "status", "#updatedAt": "updatedAt"}
        values: dict[str, Any] = {":target": target.value, ":now": iso(utc_now())}
        sets = ["#status = :target", "#updatedAt = :now", *set_clauses(changes or {}, names, values, "c")]
        if increment_attempts:
            names["#attempts"] = "attempts"
            values[":zero"] = 0
            values[":one"] = 1
            sets.append("#attempts = if_not_exists(#attempts, :zero) + :one")
        allowed_refs = []
        for index, status in enumerate(allowed):
            values[f":from{index}"] = status.value
            allowed_refs.append(f":from{index}")
        condition = f"attribute_exists(jobId) AND #status IN ({', '.join(allowed_refs)})"
        if extra_condition:
            expression, extra_values = extra_condition
            condition = f"{condition} AND ({expression})"
            values.update(extra_values)
            names.update({k: v for k, v in _names_in(expression).items() if k not in names})
        removes = list(remove)
        if target.is_final:
            removes.append(OPEN_ATTRIBUTE)  # out of the open index
        elif any(status.is_final for status in allowed):  # a revival (a replay of FAILED): open again
            names.update({"#open": OPEN_ATTRIBUTE, "#owner": "owner"})
            values[":defaultOwner"] = DEFAULT_OWNER
            sets.append("#open = if_not_exists(#owner, :defaultOwner)")
        update = "SET " + ", ".join(sets)
        if removes:
            for index, attr in enumerate(removes):
                names[f"#r{index}"] = attr
            update += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removes)))
        try:
            return self.update_where(job_id, update, condition, names, values)
        except ConditionFailed as exc:
            raise InvalidTransition(job_id, exc.job.status.value, target.value) from exc

    def update_where(self, job_id: str, update: str, condition: str, names: Mapping[str, str],
                     values: Mapping[str, Any]) -> Job:
        """One conditional UpdateItem (not retried: callers retry what they can recognise) and the job
        after it; ConditionFailed with the job as it is when the condition did not hold, JobNotFound
        when there is no such job."""
        try:
            response = self._ddb.update_item(
                TableName=self.table_name,
                Key={"jobId": {"S": job_id}},
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeNames=dict(names),
                ExpressionAttributeValues={k: _serializer.serialize(_to_dynamo(v)) for k, v in values.items()},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise ConditionFailed(self._get(job_id)) from exc  # _get: JobNotFound for no such job
            raise as_core_error(exc, f"updating job {job_id}") from exc
        except BotoCoreError as exc:
            raise as_core_error(exc, f"updating job {job_id}") from exc
        return item_to_job(response["Attributes"])


def _with_open(item: dict[str, Any], job: Job) -> dict[str, Any]:
    """A new job's item, in the open index unless it is created final."""
    if not job.status.is_final:
        item[OPEN_ATTRIBUTE] = {"S": str(job.details.get("owner", DEFAULT_OWNER))}
    return item


def _names_in(expression: str) -> dict[str, str]:
    """Attribute-name placeholders (#name) used in an extra condition map to the bare name."""
    return {ref: ref[1:] for ref in re.findall(r"#[A-Za-z_][A-Za-z0-9_]*", expression)}
