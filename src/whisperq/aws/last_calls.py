"""Notes of messages on the last delivery their queue allows (core.leases.LastCall), kept on the item of
the work each carries: the job's for an upload's message, the chunk's for a chunk's. A worker notes one
before it starts, marks it timed out when its invocation's deadline comes first, and clears it when the
handling ended; the reaper ends the job of one left behind (transcriber/reaper.py)."""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from whisperq.aws.errors import as_core_error, error_code
from whisperq.aws.expressions import Update
from whisperq.aws.job_items import LAST_CALL_NAMES, last_call_attributes
from whisperq.aws.jobs_table import JobsTable
from whisperq.core.jobs import JobStatus
from whisperq.core.leases import LastCall

OPEN = [status.value for status in JobStatus if not status.is_final]


class LastCalls:
    """One best-effort write each: a note that does not land only leaves its job to the queue as before."""

    def __init__(self, jobs: JobsTable, chunks_table: str, retention_s: int):
        self.jobs = jobs
        self.chunks_table = chunks_table
        self.retention_s = retention_s  # a chunk item the note creates expires like the others

    def note(self, job_id: str, chunk: int | None, call: LastCall) -> bool:
        """Note `call` on the job (chunk None) or on its chunk, while the job is open; False when it was not."""
        update = Update().set(last_call_attributes(call))
        if chunk is None:
            update.require(update.one_of("status", OPEN))
        else:
            update.set_if_absent({"expiresAt": int(time.time()) + self.retention_s})
        return self._write(job_id, chunk, update, "note a last call")

    def timed_out(self, job_id: str, chunk: int | None, message_id: str) -> bool:
        """The invocation's deadline came with the work unfinished."""
        update = Update().set({"lastCallTimedOut": True})
        update.require(update.equals("lastCallMessageId", message_id))
        return self._write(job_id, chunk, update, "mark a last call timed out")

    def clear(self, job_id: str, chunk: int | None, message_id: str) -> bool:
        """The message's handling ended: it is acknowledged, or its own attempt ended the job."""
        update = Update().remove(LAST_CALL_NAMES)
        update.require(update.equals("lastCallMessageId", message_id))
        return self._write(job_id, chunk, update, "clear a last call")

    def _write(self, job_id: str, chunk: int | None, update: Update, what: str) -> bool:
        if chunk is None:
            table, key = self.jobs.table_name, {"jobId": {"S": job_id}}
        else:
            table, key = self.chunks_table, {"jobId": {"S": job_id}, "chunk": {"N": str(chunk)}}

        def once() -> bool:
            try:
                self._ddb.update_item(TableName=table, Key=key, **update.request())
                return True
            except ClientError as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    return False
                raise as_core_error(exc, f"{what} of job {job_id}") from exc
            except BotoCoreError as exc:
                raise as_core_error(exc, f"{what} of job {job_id}") from exc

        return bool(self.jobs.retry.call(what, once))

    @property
    def _ddb(self) -> Any:
        return self.jobs.clients.dynamodb
