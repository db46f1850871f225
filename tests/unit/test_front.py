from whisperq.local.front import to_proxy_event


def test_to_proxy_event_when_get_with_query_then_rest_api_shape():
    event = to_proxy_event("GET", "/status/abc%20d?x=1&x=2&y=", [("Accept", "application/json")], b"", "127.0.0.1")
    assert event["httpMethod"] == "GET" and event["path"] == "/status/abc d"
    assert event["queryStringParameters"] == {"x": "2", "y": ""}
    assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": [""]}
    assert event["headers"] == {"Accept": "application/json"}
    assert event["body"] is None and event["isBase64Encoded"] is False
    assert event["requestContext"]["identity"]["sourceIp"] == "127.0.0.1"


def test_to_proxy_event_when_binary_body_then_base64():
    event = to_proxy_event("POST", "/upload", [], b"\xff\xfe\x00", "127.0.0.1")
    assert event["isBase64Encoded"] is True and event["body"] == "//4A"
