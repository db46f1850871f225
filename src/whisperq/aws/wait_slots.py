"""A cap on the requests of one API key that wait for their job at once (the OpenAI-compatible routes
hold their function up to 25 s each): a few slot items per key in the jobs table, each taken with one
conditional write and given back by deleting it. A slot whose holder died (a function ended at its
timeout) frees itself when its hold runs out, and the table's TTL removes it."""

from __future__ import annotations

import contextlib
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from whisperq.aws.errors import as_core_error, error_code
from whisperq.aws.jobs_table import JobsTable


class WaitSlots:
    def __init__(self, jobs: JobsTable, per_key: int, hold_s: float):
        self.jobs = jobs
        self.per_key = per_key
        self.hold_s = hold_s

    def take(self, owner: str) -> str | None:
        """A slot of `owner`'s (its item's key), or None when all are held."""
        now = time.time()
        for index in range(self.per_key):
            key = f"wait#{owner}#{index}"
            try:
                self._ddb.put_item(
                    TableName=self.jobs.table_name,
                    Item={"jobId": {"S": key}, "heldUntil": {"N": str(now + self.hold_s)},
                          "expiresAt": {"N": str(int(now + self.hold_s) + 3600)}},
                    ConditionExpression="attribute_not_exists(jobId) OR heldUntil < :now",
                    ExpressionAttributeValues={":now": {"N": str(now)}})
                return key
            except ClientError as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise as_core_error(exc, "taking a wait slot") from exc
            except BotoCoreError as exc:
                raise as_core_error(exc, "taking a wait slot") from exc
        return None

    def give_back(self, key: str) -> None:
        """Best effort: a slot not given back frees itself when its hold runs out."""
        with contextlib.suppress(ClientError, BotoCoreError):
            self._ddb.delete_item(TableName=self.jobs.table_name, Key={"jobId": {"S": key}})

    @property
    def _ddb(self) -> Any:
        return self.jobs.clients.dynamodb
