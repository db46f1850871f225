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

from whisperq.aws.jobs_table import ConditionFailed, JobsTable, set_clauses
from whisperq.core.jobs import Job, JobStatus, iso, utc_now

# A chunk may be worked on while its job is PROCESSING, or FAILED because another chunk was
# dead-lettered (so that a replay of that chunk finds the rest done), or QUEUED after a replay.
WORKABLE = (JobStatus.QUEUED, JobStatus.PROCESSING, JobStatus.FAILED)
_WORKABLE_VALUES = {f":s{i}": s.value for i, s in enumerate(WORKABLE)}
_JOB_WORKABLE = f"#status IN ({', '.join(_WORKABLE_VALUES)})"


def lease_attr(index: int) -> str:
    return f"chunk{index}Lease"


def until_attr(index: int) -> str:
    return f"chunk{index}LeaseUntil"


def message_attr(index: int) -> str:
    return f"chunk{index}LeaseMessage"


def done_attr(index: int) -> str:
    return f"chunk{index}Done"


class ChunkNotTaken(ConditionFailed):
    """The chunk could not be leased or counted: done, leased by another attempt, or its job is over."""


@dataclass(frozen=True)
class Counted:
    """The job after a chunk was counted done; `last` when this count completed the set."""

    job: Job

    @property
    def last(self) -> bool:
        return self.job.details.get("chunksDone") == self.job.details.get("chunks")


class ChunkLedger:
    """Conditional writes for chunk leases and the done counter of fanned-out jobs."""

    def __init__(self, jobs: JobsTable):
        self.jobs = jobs

    def _update(self, job_id: str, update: str, condition: str, names: Mapping[str, str],
                values: Mapping[str, Any]) -> Job:
        try:
            return self.jobs.update_where(job_id, update, condition, names, values)
        except ConditionFailed as exc:
            raise ChunkNotTaken(exc.job) from exc

    def take(self, job_id: str, index: int, lease: str, lease_s: float, message_id: str) -> Job:
        """Lease chunk `index` (not done, no live lease, its job still workable); ChunkNotTaken otherwise."""
        names = {"#lease": lease_attr(index), "#until": until_attr(index), "#msg": message_attr(index),
                 "#done": done_attr(index), "#status": "status", "#attempts": "chunkAttempts"}
        now = time.time()
        values = {":lease": lease, ":until": now + lease_s, ":msg": message_id, ":now": now, ":one": 1,
                  **_WORKABLE_VALUES}
        condition = (f"{_JOB_WORKABLE} AND attribute_not_exists(#done) "
                     "AND (attribute_not_exists(#lease) OR #until < :now)")
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

    def count_done(self, job_id: str, index: int, lease: str, transcribe_s: float) -> Counted:
        """Mark the chunk done under our lease and add it to the job's count, in one conditional update.

        Raises ChunkNotTaken when the lease was lost or the job ended (CANCELLED)."""
        names = {"#lease": lease_attr(index), "#until": until_attr(index), "#msg": message_attr(index),
                 "#done": done_attr(index), "#count": "chunksDone", "#tx": "chunksTranscribeS", "#status": "status"}
        values = {":lease": lease, ":one": 1, ":tx": round(transcribe_s, 4), **_WORKABLE_VALUES}
        condition = f"#lease = :lease AND attribute_not_exists(#done) AND {_JOB_WORKABLE}"
        update = "SET #done = :lease REMOVE #lease, #until, #msg ADD #count :one, #tx :tx"

        def once() -> Counted:
            try:
                return Counted(self._update(job_id, update, condition, names, values))
            except ChunkNotTaken as exc:
                if exc.job.details.get(done_attr(index)) == lease:
                    # Our own earlier try counted it and its answer was lost. The count may have moved on
                    # since: whoever sees it equal the total merges (the merge's lease keeps it to one).
                    return Counted(exc.job)
                raise

        return self.jobs.retry.call("count chunk done", once)

    def record_plan(self, job_id: str, lease: str, plan: list[dict[str, Any]], fields: Mapping[str, Any]) -> Job:
        """Write the job's chunk plan (and `fields`) under the job's lease, before any chunk message is
        sent. A split done again (its worker died) makes the same plan; chunks counted stay counted."""
        names = {"#chunks": "chunks", "#plan": "chunkPlan", "#fanout": "fannedOutAt", "#count": "chunksDone",
                 "#leaseId": "leaseId", "#status": "status"}
        values: dict[str, Any] = {":n": len(plan), ":plan": plan, ":now": iso(utc_now()), ":zero": 0,
                                  ":lease": lease, ":processing": JobStatus.PROCESSING.value}
        sets = ["#chunks = :n", "#plan = :plan", "#fanout = :now", "#count = if_not_exists(#count, :zero)",
                *set_clauses(fields, names, values, "f")]
        return self.jobs.retry.call("record chunk plan", lambda: self._update(
            job_id, "SET " + ", ".join(sets), "#leaseId = :lease AND #status = :processing", names, values))

    def mark_sent(self, job_id: str, lease: str, fields: Mapping[str, Any]) -> Job:
        """Every chunk message is on the queue: the job's lease ends, its chunks carry it from here.
        ChunkNotTaken when the job was cancelled meanwhile (or the lease lost)."""
        names = {"#sent": "chunksSentAt", "#leaseId": "leaseId", "#until": "leaseExpiresAt",
                 "#msg": "leaseMessageId", "#status": "status"}
        values: dict[str, Any] = {":now": iso(utc_now()), ":lease": lease, ":processing": JobStatus.PROCESSING.value}
        sets = ["#sent = :now", *set_clauses(fields, names, values, "f")]
        return self.jobs.retry.call("record chunks sent", lambda: self._update(
            job_id, "SET " + ", ".join(sets) + " REMOVE #leaseId, #until, #msg",
            "#leaseId = :lease AND #status = :processing", names, values))
