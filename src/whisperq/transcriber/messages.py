"""What arrives on the transcription queue: S3 upload events (and chunk messages, see fanout), and
what the queue and the invocation tell us about each delivery."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import unquote_plus

from whisperq.core.errors import WhisperqError
from whisperq.core.jobs import iso


class UnprocessableMessage(WhisperqError):
    """A queue message that is not an S3 event; it is failed so that it ends in the DLQ for a person."""

    code = "unprocessable_message"


@dataclass(frozen=True)
class Delivery:
    """What the queue tells us about one message: enough to reason about retries."""

    message_id: str
    receive_count: int
    sent_timestamp_ms: int | None
    receipt_handle: str | None = None
    queue_arn: str | None = None
    # When the invocation that holds it must end (time.monotonic() seconds); None: a fresh invocation's.
    deadline: float | None = None

    def time_left_s(self, function_timeout_s: float) -> float:
        """Seconds the invocation has left for this message."""
        if self.deadline is None:
            return float(function_timeout_s)
        return max(0.0, self.deadline - time.monotonic())


@dataclass(frozen=True)
class ObjectEvent:
    bucket: str
    key: str
    size_bytes: int | None
    event_name: str
    # Which version of the object (a dropped file's job is one per version): S3 gives versionId on a
    # versioned bucket, and sequencer, which orders the events of one key, always.
    version_id: str | None = None
    sequencer: str | None = None
    etag: str | None = None


def parse_s3_notification(body: str) -> list[ObjectEvent]:
    """The ObjectCreated records of an S3 notification body; [] for s3:TestEvent.

    Keys arrive URL-encoded (spaces as '+'), as in AWS; they are decoded here."""
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, TypeError) as exc:
        raise UnprocessableMessage(f"message body is not JSON: {body[:200]!r}") from exc
    if not isinstance(payload, dict):
        raise UnprocessableMessage(f"message body is not an S3 event: {body[:200]!r}")
    if payload.get("Event") == "s3:TestEvent":
        return []
    records = payload.get("Records")
    if not isinstance(records, list):
        raise UnprocessableMessage(f"message body has no S3 Records: {body[:200]!r}")
    events = []
    for record in records:
        try:
            s3 = record["s3"]
            name = str(record.get("eventName", ""))
            key = unquote_plus(s3["object"]["key"])
            bucket = s3["bucket"]["name"]
            size = s3["object"].get("size")
            extra = {field: s3["object"].get(name) for field, name in
                     (("version_id", "versionId"), ("sequencer", "sequencer"), ("etag", "eTag"))}
        except (KeyError, TypeError, AttributeError) as exc:
            raise UnprocessableMessage(f"S3 record without bucket or key: {str(record)[:200]}") from exc
        if name.startswith("ObjectCreated"):
            events.append(ObjectEvent(bucket, key, int(size) if size is not None else None, name,
                                      **{k: str(v) for k, v in extra.items() if v is not None}))
    return events


def iso_from_ms(epoch_ms: int) -> str:
    return iso(datetime.fromtimestamp(epoch_ms / 1000, tz=UTC))
