"""Operating the dead-letter queue: list what is there, replay it to the transcription queue, purge.

Replay resets each job (FAILED -> QUEUED) before its message goes back, so the transcriber runs it
again. It uses SQS's native redrive (StartMessageMoveTask) where the endpoint has it and otherwise
moves messages itself, send first and delete second: a crash in between can duplicate a message
(harmless, the transcriber is idempotent on the job) but never lose one."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from whisperq.aws.clients import Clients
from whisperq.aws.errors import as_core_error, error_code
from whisperq.aws.jobs_table import JobsTable
from whisperq.aws.queues import Message, Queue
from whisperq.aws.s3_events import first_key
from whisperq.core.errors import InvalidTransition, JobNotFound, WhisperqError
from whisperq.core.fanout import parse_chunk_message
from whisperq.core.keys import job_id_from_audio_key
from whisperq.core.sources import parse_fetch_message


@dataclass(frozen=True)
class DeadLetter:
    message_id: str
    job_id: str | None
    key: str | None
    receive_count: int  # when it was dead-lettered (looking at it since does not count)
    age_s: float
    error: str | None
    job_status: str | None
    body: str
    message: Message = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"messageId": self.message_id, "jobId": self.job_id, "key": self.key,
                "receiveCount": self.receive_count, "ageS": round(self.age_s, 1), "jobStatus": self.job_status,
                "error": self.error, "body": self.body}


@dataclass
class ReplayReport:
    moved: list[str] = field(default_factory=list)  # message ids
    jobs_reset: list[str] = field(default_factory=list)  # FAILED -> QUEUED
    not_reset: list[str] = field(default_factory=list)  # "message id: why its job was not reset" (moved all the same)
    method: str = "send-then-delete"

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "moved": len(self.moved), "jobsReset": self.jobs_reset,
                "notReset": self.not_reset, "messageIds": self.moved}

    def lines(self, dry_run: bool = False) -> list[str]:
        """What it did, for a person: what moved, which jobs were reset, which were not and why."""
        lines = [f"{'would move' if dry_run else 'moved'} {len(self.moved)} message(s) back to the transcription "
                 f"queue ({self.method})"]
        if self.jobs_reset:
            lines.append(f"{'would reset' if dry_run else 'reset'} {len(self.jobs_reset)} job(s) FAILED -> QUEUED: "
                         f"{', '.join(self.jobs_reset)}")
        lines += [f"{'would move' if dry_run else 'moved'} without a reset: {why}" for why in self.not_reset]
        return lines


class DeadLetterQueue:
    def __init__(self, clients: Clients, dlq: Queue, queue: Queue, jobs: JobsTable,
                 sleep: Callable[[float], None] = time.sleep):
        self.clients = clients
        self.dlq = dlq
        self.queue = queue
        self.jobs = jobs
        self.sleep = sleep

    def peek(self, limit: int = 100, rounds: int = 3, hold_s: int = 30) -> list[DeadLetter]:
        """The dead letters (up to `limit`), without taking them.

        SQS has no paging and a receive of visibility 0 can return the same ten messages every time
        (moto always does), so each message seen is held for `hold_s` while the next receives find
        the others, then all are given back at once (visibility 0). A few empty rounds end it: a
        short poll samples only some of SQS's servers."""
        seen: dict[str, Message] = {}
        quiet = 0
        try:
            while len(seen) < limit and quiet < rounds:
                batch = self.dlq.receive(min(10, limit - len(seen)), 0, visibility_timeout_s=hold_s)
                fresh = [m for m in batch if m.message_id not in seen]
                quiet = 0 if fresh else quiet + 1
                for message in fresh:
                    seen[message.message_id] = message
        finally:
            for message in seen.values():
                # Best effort: a message not given back returns by itself after hold_s.
                with contextlib.suppress(WhisperqError):
                    self.dlq.change_visibility(message, 0)
        max_receives = self._max_receive_count()
        return [self._describe(m, max_receives) for m in seen.values()]

    def _max_receive_count(self) -> int | None:
        """The source queue's maxReceiveCount: every receive of a dead letter beyond it was someone
        looking at the DLQ (a receive is the only way to look), not a delivery to a worker."""
        try:
            policy = json.loads(self.queue.attributes(["RedrivePolicy"]).get("RedrivePolicy") or "{}")
            return int(policy["maxReceiveCount"])
        except (WhisperqError, ValueError, KeyError, TypeError):
            return None

    def _describe(self, message: Message, max_receives: int | None) -> DeadLetter:
        try:
            chunk = parse_chunk_message(message.body)
        except ValueError:
            chunk = None
        try:
            fetch = parse_fetch_message(message.body)
        except ValueError:
            fetch = None
        key: str | None
        job_id: str | None
        if chunk is not None:  # one chunk of a fanned-out job: replaying it resumes the job
            key, job_id = chunk.key, chunk.job_id
        elif fetch is not None:  # the fetch of a job's audio by URL: replaying it fetches again
            key, job_id = None, fetch
        else:
            key = first_key(message.body)
            job_id = job_id_from_audio_key(key) if key else None
        error = status = None
        if job_id:
            try:
                job = self.jobs.get(job_id)
                status = job.status.value
                error = job.error or job.last_error
            except JobNotFound:
                error = "no such job"
        sent = int(message.attributes.get("SentTimestamp", "0")) / 1000
        receives = min(message.receive_count, max_receives) if max_receives else message.receive_count
        return DeadLetter(message.message_id, job_id, key, receives,
                          max(0.0, time.time() - sent) if sent else 0.0, error, status, message.body, message)

    def replay(self, job_ids: Iterable[str] | None = None, max_messages: int | None = None,
               rate_per_s: float | None = None, dry_run: bool = False, native: bool = True) -> ReplayReport:
        """Move dead letters (all, or those of `job_ids`) back to the transcription queue."""
        wanted = set(job_ids) if job_ids is not None else None
        letters = [d for d in self.peek(limit=max_messages or 10_000) if wanted is None or d.job_id in wanted]
        report = ReplayReport()
        if dry_run:
            report.method = "dry-run"
            report.moved = [d.message_id for d in letters]
            report.jobs_reset = [d.job_id for d in letters if d.job_id and d.job_status == "FAILED"]
            report.not_reset = [f"{d.message_id}: job {d.job_id} is {d.job_status or 'unknown'}" for d in letters
                                if d.job_status != "FAILED"]
            return report
        for letter in letters:
            self._reset_job(letter, report)
        # The native move task takes every message in the DLQ, so only when the peek saw them all (and
        # reset all their jobs): a message whose job was not reset would be acknowledged as FAILED.
        saw_everything = len(letters) >= self.depth()
        if native and wanted is None and max_messages is None and saw_everything and self._start_move_task(rate_per_s):
            report.method = "StartMessageMoveTask"
            report.moved = [d.message_id for d in letters]
            return report
        for index, letter in enumerate(letters):
            if rate_per_s and index:
                self.sleep(1.0 / rate_per_s)
            self.queue.send(letter.body)  # first send ...
            self.dlq.delete([letter.message])  # ... then delete: a crash here duplicates, never loses
            report.moved.append(letter.message_id)
        return report

    def _reset_job(self, letter: DeadLetter, report: ReplayReport) -> None:
        if not letter.job_id:
            return
        try:
            self.jobs.revive(letter.job_id)
            report.jobs_reset.append(letter.job_id)
        except InvalidTransition as exc:
            done = exc.current in ("COMPLETED", "CANCELLED")
            if not done:
                with contextlib.suppress(InvalidTransition, JobNotFound):
                    self.jobs.replayed_open(letter.job_id)
            report.not_reset.append(
                f"{letter.message_id}: job {letter.job_id} is {exc.current}"
                + (" (the worker acknowledges its message and changes nothing)" if done
                   else " (still open: the message's next delivery takes it over)"))
        except JobNotFound:
            report.not_reset.append(f"{letter.message_id}: job {letter.job_id} does not exist "
                                    "(the worker acknowledges its message)")

    def depth(self) -> int:
        """Every message in the DLQ: visible, in flight or delayed."""
        depth = self.dlq.depth()
        return depth["visible"] + depth["in_flight"] + depth["delayed"]

    def _start_move_task(self, rate_per_s: float | None) -> bool:
        """Start SQS's own redrive; False when the endpoint does not implement it (moto)."""
        kwargs: dict[str, Any] = {"SourceArn": self.dlq.arn, "DestinationArn": self.queue.arn}
        if rate_per_s:
            kwargs["MaxNumberOfMessagesPerSecond"] = max(1, int(rate_per_s))
        try:
            self.clients.sqs.start_message_move_task(**kwargs)
            return True
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status >= 500 or error_code(exc) in ("UnsupportedOperation", "InvalidAction", "NotImplemented"):
                return False
            raise as_core_error(exc, "starting the dead-letter redrive") from exc
        except BotoCoreError as exc:
            raise as_core_error(exc, "starting the dead-letter redrive") from exc

    def purge(self) -> None:
        try:
            self.clients.sqs.purge_queue(QueueUrl=self.dlq.url)
        except (ClientError, BotoCoreError) as exc:
            raise as_core_error(exc, "purging the dead-letter queue") from exc
