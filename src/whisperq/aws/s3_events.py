"""S3 event notifications, read with Powertools' data classes: the one parser of what S3 puts on the
queue, for the transcriber and for the DLQ's view alike."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import quote_plus, unquote_plus

from aws_lambda_powertools.utilities.data_classes import S3Event

from whisperq.core.errors import UnprocessableMessage


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
    """The ObjectCreated records of an S3 notification body; [] for s3:TestEvent. Keys arrive URL-encoded
    (spaces as '+'), as in AWS; they are decoded here."""
    try:
        payload = json.loads(body)
    except (json.JSONDecodeError, TypeError) as exc:
        raise UnprocessableMessage(f"message body is not JSON: {body[:200]!r}") from exc
    if not isinstance(payload, dict):
        raise UnprocessableMessage(f"message body is not an S3 event: {body[:200]!r}")
    if payload.get("Event") == "s3:TestEvent":
        return []
    if not isinstance(payload.get("Records"), list):
        raise UnprocessableMessage(f"message body has no S3 Records: {body[:200]!r}")
    events = []
    try:
        for record in S3Event(payload).records:
            name = str(record.get("eventName") or "")
            s3 = record.s3
            found = s3.get_object
            key, bucket = unquote_plus(found.key), s3.bucket.name  # both required, whatever the event
            if name.startswith("ObjectCreated"):
                events.append(ObjectEvent(bucket, key, found.size if "size" in found else None, name,
                                          found.version_id, found.get("sequencer"), found.etag or None))
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise UnprocessableMessage(f"S3 record without bucket or key: {body[:200]}") from exc
    return events


def first_key(body: str) -> str | None:
    """The key of a notification's first record, or None for a body that is not one (the DLQ's view)."""
    try:
        events = parse_s3_notification(body)
    except UnprocessableMessage:
        return None
    return events[0].key if events else None


def object_created_body(bucket: str, key: str, size_bytes: int | None) -> str:
    """An S3 ObjectCreated notification of one object, as S3 sends it to SQS (the key URL-encoded): what a
    queue gets when an object arrives where no notification reaches."""
    s3 = {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
          "object": {"key": quote_plus(key), **({"size": size_bytes} if size_bytes is not None else {})}}
    return json.dumps({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                                    "s3": s3}]})
