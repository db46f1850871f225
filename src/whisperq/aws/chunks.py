"""The chunks of a fanned-out job, kept on the job's own item in the jobs table.

Each chunk n has a lease (`chunk<n>Lease`, `chunk<n>LeaseUntil`, `chunk<n>LeaseMessage`) taken with
a conditional write, as whole jobs are, and a done mark (`chunk<n>Done`). Counting a chunk done is
one conditional update that sets its mark and adds one to `chunksDone`: a chunk is counted once
however often its message arrives, and exactly one update sees the count reach `chunks`.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from whisperq.aws.errors import as_core_error, error_code
from whisperq.aws.jobs_table import JobsTable, _to_dynamo, item_to_job
from whisperq.core.errors import WhisperqError
from whisperq.core.jobs import Job, JobStatus, iso, utc_now

_serializer = TypeSerializer()

# A chunk may be worked on while its job is PROCESSING, or FAILED because another chunk was
# dead-lettered (so that a replay of that chunk finds the rest done), or QUEUED after a replay.
WORKABLE = (JobStatus.QUEUED, JobStatus.PROCESSING, JobStatus.FAILED)


def lease_attr(index: int) -> str:
    return f"chunk{index}Lease"


def until_attr(index: int) -> str:
    return f"chunk{index}LeaseUntil"


def message_attr(index: int) -> str:
    return f"chunk{index}LeaseMessage"


def done_attr(index: int) -> str:
    return f"chunk{index}Done"


class ChunkNotTaken(WhisperqError):
    """The chunk could not be leased: done, leased by another attempt, or its job is over."""

    def __init__(self, job: Job, reason: str):
        super().__init__(reason)
        self.job = job
        self.reason = reason


@dataclass(frozen=True)
class Counted:
    """The job after a chunk was counted done; `last` when this count completed the set."""

    job: Job
    last: bool


class ChunkLedger:
    """Conditional writes for chunk leases and the done counter of fanned-out jobs."""

    def __init__(self, jobs: JobsTable):
        self.jobs = jobs

    def _update(self, job_id: str, update: str, condition: str, names: Mapping[str, str],
                values: Mapping[str, Any]) -> Job:
        try:
            response = self.jobs._ddb.update_item(
                TableName=self.jobs.table_name, Key={"jobId": {"S": job_id}},
                UpdateExpression=update, ConditionExpression=condition,
                ExpressionAttributeNames=dict(names),
                ExpressionAttributeValues={k: _serializer.serialize(_to_dynamo(v)) for k, v in values.items()},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                job = self.jobs._get(job_id)
                raise ChunkNotTaken(job, "condition failed") from exc
            raise as_core_error(exc, f"updating chunks of job {job_id}") from exc
        except BotoCoreError as exc:
            raise as_core_error(exc, f"updating chunks of job {job_id}") from exc
        return item_to_job(response["Attributes"])

    def take(self, job_id: str, index: int, lease: str, lease_s: float, message_id: str) -> Job:
        """Lease chunk `index` (not done, no live lease, its job still workable); ChunkNotTaken otherwise."""
        names = {"#lease": lease_attr(index), "#until": until_attr(index), "#msg": message_attr(index),
                 "#done": done_attr(index), "#status": "status", "#attempts": "chunkAttempts"}
        now = time.time()
        values = {":lease": lease, ":until": now + lease_s, ":msg": message_id, ":now": now, ":one": 1,
                  **{f":s{i}": s.value for i, s in enumerate(WORKABLE)}}
        condition = (f"#status IN ({', '.join(f':s{i}' for i in range(len(WORKABLE)))}) "
                     "AND attribute_not_exists(#done) AND (attribute_not_exists(#lease) OR #until < :now)")
        update = "SET #lease = :lease, #until = :until, #msg = :msg ADD #attempts :one"

        def once() -> Job:
            try:
                return self._update(job_id, update, condition, names, values)
            except ChunkNotTaken as exc:
                if exc.job.details.get(lease_attr(index)) == lease:
                    return exc.job  # an earlier try of ours took it, and its answer was lost
                raise

        return self.jobs.retry.call("lease chunk", once)

    def extend(self, job_id: str, index: int, lease: str, lease_s: float) -> None:
        """Push the chunk's lease on while it is worked on (the heartbeat)."""
        self._update(job_id, "SET #until = :until", "#lease = :lease",
                     {"#lease": lease_attr(index), "#until": until_attr(index)},
                     {":lease": lease, ":until": time.time() + lease_s})

    def release(self, job_id: str, index: int, lease: str) -> None:
        """Drop our lease after a failed attempt, so that the message's next delivery can take it at once."""
        with contextlib.suppress(ChunkNotTaken):
            self.jobs.retry.call("release chunk", lambda: self._update(
                job_id, "REMOVE #lease, #until, #msg", "#lease = :lease",
                {"#lease": lease_attr(index), "#until": until_attr(index), "#msg": message_attr(index)},
                {":lease": lease}))

    def count_done(self, job_id: str, index: int, lease: str, transcribe_s: float, audio_s: float) -> Counted:
        """Mark the chunk done under our lease and add it to the job's count, in one conditional update.

        Raises ChunkNotTaken when the lease was lost or the job ended (CANCELLED)."""
        names = {"#lease": lease_attr(index), "#until": until_attr(index), "#msg": message_attr(index),
                 "#done": done_attr(index), "#count": "chunksDone", "#tx": "chunksTranscribeS",
                 "#audio": "chunksAudioS", "#status": "status"}
        values = {":lease": lease, ":one": 1, ":tx": round(transcribe_s, 4), ":audio": round(audio_s, 3),
                  **{f":s{i}": s.value for i, s in enumerate(WORKABLE)}}
        condition = (f"#lease = :lease AND attribute_not_exists(#done) "
                     f"AND #status IN ({', '.join(f':s{i}' for i in range(len(WORKABLE)))})")
        update = "SET #done = :lease REMOVE #lease, #until, #msg ADD #count :one, #tx :tx, #audio :audio"

        def once() -> Counted:
            try:
                job = self._update(job_id, update, condition, names, values)
            except ChunkNotTaken as exc:
                if exc.job.details.get(done_attr(index)) == lease:
                    # Our own earlier try counted it and its answer was lost: the count may since have
                    # moved on, so the last chunk is whoever's count equals the total; tell the truth.
                    job = exc.job
                    return Counted(job, job.details.get("chunksDone") == job.details.get("chunks"))
                raise
            return Counted(job, job.details.get("chunksDone") == job.details.get("chunks"))

        return self.jobs.retry.call("count chunk done", once)

    def record_plan(self, job_id: str, lease: str, plan: list[dict[str, Any]], fields: Mapping[str, Any]) -> Job:
        """Write the job's chunk plan (and `fields`) under the job's lease, before any chunk message is
        sent. A split done again (its worker died) makes the same plan; chunks counted stay counted."""
        names = {"#chunks": "chunks", "#plan": "chunkPlan", "#fanout": "fannedOutAt", "#count": "chunksDone",
                 "#leaseId": "leaseId", "#status": "status"}
        values: dict[str, Any] = {":n": len(plan), ":plan": plan, ":now": iso(utc_now()), ":zero": 0,
                                  ":lease": lease, ":processing": JobStatus.PROCESSING.value}
        sets = ["#chunks = :n", "#plan = :plan", "#fanout = :now", "#count = if_not_exists(#count, :zero)"]
        for index, (name, value) in enumerate(fields.items()):
            names[f"#f{index}"] = name
            values[f":f{index}"] = value
            sets.append(f"#f{index} = :f{index}")
        return self.jobs.retry.call("record chunk plan", lambda: self._update(
            job_id, "SET " + ", ".join(sets), "#leaseId = :lease AND #status = :processing", names, values))

    def mark_sent(self, job_id: str, lease: str, fields: Mapping[str, Any]) -> Job:
        """Every chunk message is on the queue: the job's lease ends, its chunks carry it from here.
        ChunkNotTaken when the job was cancelled meanwhile (or the lease lost)."""
        names = {"#sent": "chunksSentAt", "#leaseId": "leaseId", "#until": "leaseExpiresAt",
                 "#msg": "leaseMessageId", "#status": "status"}
        values: dict[str, Any] = {":now": iso(utc_now()), ":lease": lease, ":processing": JobStatus.PROCESSING.value}
        sets = ["#sent = :now"]
        for index, (name, value) in enumerate(fields.items()):
            names[f"#f{index}"] = name
            values[f":f{index}"] = value
            sets.append(f"#f{index} = :f{index}")
        return self.jobs.retry.call("record chunks sent", lambda: self._update(
            job_id, "SET " + ", ".join(sets) + " REMOVE #leaseId, #until, #msg",
            "#leaseId = :lease AND #status = :processing", names, values))
