"""The transcriber: one queue message in, what happened to each piece of work in it out.

An S3 upload event goes to the whole-file path (whole_file), a chunk message to fan-out (fanout); both
do their work under the one delivery protocol (attempts) and finish the same way (completion). The job
is the unit of idempotency, never the SQS message id.
"""

from __future__ import annotations

import contextlib

from whisperq.aws.s3_events import ObjectEvent, parse_s3_notification
from whisperq.core.errors import InvalidTransition, JobNotFound, UnprocessableMessage, WhisperqError
from whisperq.core.fanout import parse_chunk_message
from whisperq.core.keys import job_id_from_audio_key
from whisperq.core.sources import in_inbox, parse_fetch_message
from whisperq.transcriber.context import WorkerContext
from whisperq.transcriber.engines import Engine
from whisperq.transcriber.fanout import FanOut
from whisperq.transcriber.last_call import last_call, note_ahead
from whisperq.transcriber.messages import Delivery, iso_from_ms
from whisperq.transcriber.sources import Fetcher, Inbox
from whisperq.transcriber.whole_file import WholeFile


class Transcriber:
    """Turns queue messages (S3 upload events, chunk messages) into transcripts and job status changes."""

    def __init__(self, context: WorkerContext):
        self.context = context
        self.fanout = FanOut(context)
        self.whole_file = WholeFile(context, self.fanout)
        self.fetcher = Fetcher(context)
        self.inbox = Inbox(context)

    @property
    def engine(self) -> Engine:
        return self.context.engine

    def note_retry(self, what: str, error: BaseException, attempt: int) -> None:
        """Called by the adapters' retry policy before each retry of an AWS call."""
        self.context.retries.note()
        self.context.metrics.add_metric("Retries", "Count", 1)
        self.context.log.warning("retrying", extra={"call": what, "attempt": attempt, "error": str(error)})

    def handle_message(self, body: str, delivery: Delivery) -> list[str]:
        """Handle one queue message; returns what happened to each piece of work in it.

        Raises for anything that should be retried (or dead-lettered): the batch processor
        reports that record as failed."""
        try:
            chunk = parse_chunk_message(body)
        except ValueError as exc:
            raise UnprocessableMessage(str(exc)) from exc
        if chunk is not None:
            with last_call(self.context, delivery, chunk.job_id, chunk.chunk.index):
                return [self.fanout.handle_chunk(chunk, delivery)]
        fetch = _fetch_job_id(body)
        if fetch is not None:
            with last_call(self.context, delivery, fetch):
                return [self.fetcher.handle(fetch, delivery)]
        outcomes = []
        for event in parse_s3_notification(body):
            if self._dropped(event):
                outcomes.append(self.inbox.handle(event))
                continue
            job_id = job_id_from_audio_key(event.key)
            with last_call(self.context, delivery, job_id) if job_id else contextlib.nullcontext():
                outcomes.append(self.whole_file.handle(event, delivery))
        return outcomes

    def _dropped(self, event: ObjectEvent) -> bool:
        """An object put in the drop folder (not an upload of a job)."""
        return event.bucket == self.context.settings.bucket and in_inbox(event.key, self.context.settings.inbox)

    def note_last_call(self, body: str, delivery: Delivery) -> None:
        """Best effort, at the start of an invocation, for a record that waits behind others in its batch:
        note it if it is on its last delivery, so that a worker that dies before reaching it (its batch
        goes back whole) leaves a note too (transcriber/last_call.py)."""
        if delivery.receive_count < self.context.settings.queue.max_receive_count:
            return
        try:
            chunk = parse_chunk_message(body)
            fetch = _fetch_job_id(body)
            work = [(chunk.job_id, chunk.chunk.index)] if chunk else [(fetch, None)] if fetch else \
                [(job_id, None) for job_id in map(job_id_from_audio_key, (e.key for e in parse_s3_notification(body)))
                 if job_id]
        except (ValueError, UnprocessableMessage):
            return
        for job_id, index in work:
            note_ahead(self.context, delivery, job_id, index)

    def mark_queued(self, body: str, delivery: Delivery) -> None:
        """Best effort: jobs whose audio arrived move UPLOADING -> QUEUED as soon as a batch holds them."""
        try:
            events = parse_s3_notification(body)
        except UnprocessableMessage:
            return
        enqueued_at = iso_from_ms(delivery.sent_timestamp_ms) if delivery.sent_timestamp_ms else None
        for event in events:
            job_id = job_id_from_audio_key(event.key)
            if job_id is None:
                continue
            try:
                self.context.jobs.mark_queued(job_id, enqueued_at)
            except (InvalidTransition, JobNotFound):
                pass
            except WhisperqError as exc:
                self.context.log.warning("could not mark job queued", extra={"job_id": job_id, "error": str(exc)})


def _fetch_job_id(body: str) -> str | None:
    try:
        return parse_fetch_message(body)
    except ValueError as exc:
        raise UnprocessableMessage(str(exc)) from exc
