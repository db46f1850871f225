import json

import pytest

from tests.conftest import load_event
from whisperq.aws.s3_events import parse_s3_notification
from whisperq.core.errors import UnprocessableMessage


def test_parse_when_test_event_then_nothing_to_do():
    assert parse_s3_notification(json.dumps(load_event("s3_test_event.json"))) == []


def test_parse_when_object_created_then_key_is_url_decoded():
    [event] = parse_s3_notification(json.dumps(load_event("s3_object_created.json")))
    assert event.key == "audio/6248633d-1631-41f1-9fa2-547eb5e6415a/my weekly café meeting.wav"
    assert event.bucket == "whisperq-local" and event.size_bytes == 200986


def test_parse_when_not_object_created_then_skipped():
    body = load_event("s3_object_created.json")
    body["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    assert parse_s3_notification(json.dumps(body)) == []


@pytest.mark.parametrize("body", ["not json", "[1, 2]", "{}", '{"Records": "x"}', '{"Records": [{"s3": {}}]}'])
def test_parse_when_malformed_then_unprocessable(body):
    with pytest.raises(UnprocessableMessage):
        parse_s3_notification(body)
