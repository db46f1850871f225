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


def test_to_proxy_event_when_multipart_then_base64_as_the_templates_binary_media_type():
    body = b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n--b--\r\n'  # valid UTF-8
    event = to_proxy_event("POST", "/v1/audio/transcriptions", [("Content-Type", "multipart/form-data; boundary=b")],
                           body, "127.0.0.1")
    assert event["isBase64Encoded"] is True
    import base64

    assert base64.b64decode(event["body"]) == body


def test_front_when_key_as_bearer_or_header_then_authorised_with_its_id_and_otherwise_403():
    import json
    import urllib.error
    import urllib.request

    from whisperq.local.front import ApiFront

    seen = []

    def handler(event, context):
        seen.append(event["requestContext"]["identity"]["apiKeyId"])
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}

    front = ApiFront(handler, api_keys={"k1": "id-1"}).start()
    try:
        for headers in ({"Authorization": "Bearer k1"}, {"x-api-key": "k1"}):
            with urllib.request.urlopen(urllib.request.Request(front.url + "/jobs", headers=headers), timeout=10) as r:
                assert r.status == 200
        try:
            urllib.request.urlopen(urllib.request.Request(front.url + "/jobs", headers={"Authorization": "Bearer k2"}),
                                   timeout=10)
            raise AssertionError("a wrong key was let through")
        except urllib.error.HTTPError as refused:
            error = json.loads(refused.read())["error"]
            assert refused.code == 403 and error["code"] == "forbidden" and error["type"] == "invalid_request_error"
    finally:
        front.stop()
    assert seen == ["id-1", "id-1"]
