"""Security: without the key, or with another key, nothing is readable or writable; pre-signed URLs
are scoped to one object, one method, one content type, and expire.

moto does not enforce pre-signed URL signatures or expiry, so the URLs are checked here the way S3
checks them: an independent SigV4 query-signature verifier (below, from the AWS specification)
recomputes each signature from the secret key, and must accept the URL as issued and refuse it
with another object key, another method, another content type, or after its expiry."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

from tests.conftest import EXAMPLES
from tests.integration.conftest import ALICE, BOB, post_form


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def sigv4_query_check(url: str, method: str, headers: dict[str, str], secret: str, now: datetime) -> str:
    """'valid', 'expired' or 'bad signature', as S3 would decide for a pre-signed URL."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    params = dict(query)
    amz_date = params["X-Amz-Date"]
    issued = datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    if now > issued + timedelta(seconds=int(params["X-Amz-Expires"])):
        return "expired"
    signed = params["X-Amz-SignedHeaders"].split(";")
    lowered = {k.lower(): v.strip() for k, v in headers.items()}
    lowered["host"] = parts.netloc
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
        for k, v in sorted(query) if k != "X-Amz-Signature"
    )
    canonical_headers = "".join(f"{name}:{lowered.get(name, '')}\n" for name in signed)
    canonical = "\n".join([method, parts.path, canonical_query, canonical_headers, ";".join(signed),
                           "UNSIGNED-PAYLOAD"])
    _, date, region, service, terminal = params["X-Amz-Credential"].split("/")
    scope = f"{date}/{region}/{service}/{terminal}"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(("AWS4" + secret).encode(), date), region), service), terminal)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return "valid" if hmac.compare_digest(expected, params["X-Amz-Signature"]) else "bad signature"


@pytest.fixture
def secret(stack) -> str:
    return stack.clients._session.get_credentials().get_frozen_credentials().secret_key


def test_presigned_put_when_checked_like_s3_then_valid_only_for_its_object_method_type_and_time(call, stack, secret):
    status, created, _ = call("POST", "/upload", {"filename": "meeting.wav", "contentType": "audio/wav",
                                                  "contentLength": 200986})
    assert status == 201
    url, headers = created["uploadUrl"], created["uploadHeaders"]
    assert "content-length" in url.lower()  # among the signed headers
    now = datetime.now(UTC)
    assert sigv4_query_check(url, "PUT", headers, secret, now) == "valid"
    # Another object: the job's own key is signed, so a neighbour (or a path escape) is refused.
    own = f"/audio/tiny-en/{created['jobId']}"
    other = url.replace(f"{own}/meeting.wav", f"{own}/other.wav")
    assert other != url and sigv4_query_check(other, "PUT", headers, secret, now) == "bad signature"
    escaped = url.replace(f"/audio/tiny-en/{created['jobId']}/meeting.wav", "/transcripts/x/x.txt")
    assert sigv4_query_check(escaped, "PUT", headers, secret, now) == "bad signature"
    # Another method or content type.
    assert sigv4_query_check(url, "GET", headers, secret, now) == "bad signature"
    assert sigv4_query_check(url, "PUT", {**headers, "Content-Type": "text/html"}, secret, now) == "bad signature"
    # Another size: the probe's 5 GB upload to a URL that signed no size is refused by S3.
    assert sigv4_query_check(url, "PUT", {**headers, "Content-Length": str(5 * 1024**3)}, secret, now) == \
        "bad signature"
    # The expiry is the configured one, and it ends.
    assert f"X-Amz-Expires={stack.settings.upload_url_expiry_s}" in url
    later = now + timedelta(seconds=stack.settings.upload_url_expiry_s + 1)
    assert sigv4_query_check(url, "PUT", headers, secret, later) == "expired"
    # The verifier is not a rubber stamp: a wrong secret fails.
    assert sigv4_query_check(url, "PUT", headers, "not-the-secret", now) == "bad signature"


def test_presigned_post_when_decoded_then_one_exact_key_one_type_bounded_size_and_an_expiry(call, stack):
    status, created, _ = call("POST", "/jobs", {"filename": "meeting.wav", "contentType": "audio/wav"})
    assert status == 201
    fields = created["upload"]["fields"]
    policy = json.loads(base64.b64decode(fields["policy"]))
    conditions = policy["conditions"]
    assert {"key": f"audio/tiny-en/{created['jobId']}/meeting.wav"} in conditions  # exact, not starts-with
    assert not any(isinstance(c, list) and c[0] == "starts-with" and c[1] == "$key" for c in conditions)
    assert {"Content-Type": "audio/wav"} in conditions
    assert ["content-length-range", 1, stack.settings.max_upload_bytes] in conditions
    expires = datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
    assert timedelta(0) < expires - datetime.now(UTC) <= timedelta(seconds=stack.settings.upload_url_expiry_s + 5)


def test_presigned_get_when_transcript_ready_then_scoped_to_that_transcript_and_expires(
        call, stack, transcriber, secret):
    _, created, _ = call("POST", "/jobs", {"filename": "meeting.wav", "contentType": "audio/wav"})
    job_id = created["jobId"]
    post_form(created, (EXAMPLES / "meeting.wav").read_bytes())
    transcriber()
    status, payload, _ = call("GET", f"/jobs/{job_id}/transcript", template="/jobs/{job_id}/transcript")
    assert status == 302
    url, now = payload["transcriptUrl"], datetime.now(UTC)
    assert sigv4_query_check(url, "GET", {}, secret, now) == "valid"
    assert sigv4_query_check(url.replace(f"{job_id}.txt", f"{job_id}.json"), "GET", {}, secret, now) == "bad signature"
    assert sigv4_query_check(url, "PUT", {}, secret, now) == "bad signature"
    assert f"X-Amz-Expires={stack.settings.download_url_expiry_s}" in url
    assert sigv4_query_check(url, "GET", {}, secret,
                             now + timedelta(seconds=stack.settings.download_url_expiry_s + 1)) == "expired"


def test_another_key_when_it_tries_everything_on_someone_elses_job_then_nothing_read_or_changed(
        call, stack, transcriber):
    _, created, _ = call("POST", "/jobs", {"filename": "meeting.wav", "contentType": "audio/wav"})
    job_id = created["jobId"]
    post_form(created, (EXAMPLES / "meeting.wav").read_bytes())
    transcriber()
    attempts = [
        ("GET", f"/jobs/{job_id}", "/jobs/{job_id}", None),
        ("GET", f"/status/{job_id}", "/status/{job_id}", None),
        ("GET", f"/jobs/{job_id}/transcript", "/jobs/{job_id}/transcript", None),
        ("DELETE", f"/jobs/{job_id}", "/jobs/{job_id}", None),
    ]
    for method, path, template, query in attempts:
        status, payload, headers = call(method, path, key=BOB, template=template, query=query)
        assert status == 404 and payload["error"]["code"] == "job_not_found", (method, path, status)
        # Nothing of the job comes back: only the error (which echoes the id the caller sent).
        assert "Location" not in headers and set(payload) == {"error"} and "meeting" not in json.dumps(payload)
    status, listing, _ = call("GET", "/jobs", key=BOB, query={"limit": "100"})
    assert status == 200 and listing["jobs"] == []
    # Alice's job is untouched by all of that.
    status, job, _ = call("GET", f"/jobs/{job_id}", key=ALICE, template="/jobs/{job_id}")
    assert status == 200 and job["status"] == "COMPLETED"
    assert stack.blobs.head(f"transcripts/{job_id}/{job_id}.txt") is not None


def test_no_key_when_it_tries_every_route_then_403_and_nothing_created(call, stack):
    before = stack.clients.dynamodb.scan(TableName=stack.settings.table)["Count"]
    job = "6248633d-1631-41f1-9fa2-547eb5e6415a"
    for method, path, body in [("POST", "/upload", {"filename": "a.wav", "contentType": "audio/wav"}),
                               ("POST", "/jobs", {"filename": "a.wav", "contentType": "audio/wav"}),
                               ("GET", "/jobs", None), ("GET", f"/jobs/{job}", None),
                               ("DELETE", f"/jobs/{job}", None), ("GET", f"/jobs/{job}/transcript", None),
                               ("GET", f"/status/{job}", None), ("GET", "/openapi.json", None)]:
        status, payload, _ = call(method, path, body, key=None, template="-")
        assert status == 403 and payload["error"]["code"] == "forbidden", (method, path)
    assert stack.clients.dynamodb.scan(TableName=stack.settings.table)["Count"] == before
