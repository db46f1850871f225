"""The three ways in for audio that is already somewhere, on the real twin with the real model: a prefix of
the twin's source bucket through one CLI command (interrupted and run again), the drop folder with plain
S3 calls (an event delivered twice), and a URL on a local web host."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
import requests

from tests.conftest import EXAMPLES, MEETING_PHRASES, normalised
from tests.e2e.conftest import WHISPERQ, run_cli, start_twin, stop_twin
from whisperq.client import Client
from whisperq.local.twin import LOCAL_CREDENTIALS

OBJECTS = 10
AUDIO = [(EXAMPLES / "meeting.wav").read_bytes(), (EXAMPLES / "meeting.mp3").read_bytes()]


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("twin-sources")
    # The local web host stands in for a public one: this twin's workers may fetch from 127.0.0.1.
    process, running = start_twin(state_dir, {"WHISPERQ_ALLOW_PRIVATE_SOURCES": "true"})
    yield state_dir, running
    stop_twin(process)


def s3_of(running):
    return boto3.client("s3", endpoint_url=running["endpointUrl"], region_name=running["region"],
                        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"])


def all_jobs(running) -> list[dict]:
    jobs, cursor = [], None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = requests.get(f"{running['apiUrl']}/jobs", params=params, headers={"x-api-key": running["apiKey"]},
                            timeout=10).json()
        jobs += page["jobs"]
        cursor = page.get("nextCursor")
        if not cursor:
            return jobs


def test_bulk_prefix_when_interrupted_and_run_again_then_every_object_once(twin, tmp_path):
    state_dir, running = twin
    bucket = running["sourceBuckets"][0]
    s3 = s3_of(running)
    for index in range(OBJECTS):
        s3.put_object(Bucket=bucket, Key=f"calls/day {index % 3}/call-{index:02d}.{'wav' if index % 2 else 'mp3'}",
                      Body=AUDIO[index % 2])
    s3.put_object(Bucket=bucket, Key="calls/README.txt", Body=b"not audio")
    manifest = tmp_path / "calls.jsonl"
    location = f"s3://{bucket}/calls/"
    listed = run_cli(state_dir, "transcribe", location, "--dry-run", "--manifest", str(manifest))
    assert listed.returncode == 0, listed.stderr
    assert f"{OBJECTS} audio object(s)" in listed.stderr and "1 other object(s) passed over" in listed.stderr
    assert listed.stdout.count("to submit") == OBJECTS and not manifest.exists()

    # Interrupted (Ctrl-C) once a few jobs are in the manifest...
    command = [*WHISPERQ, "--state-dir", str(state_dir), "transcribe", location, "--concurrency", "1",
               "--manifest", str(manifest)]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not manifest.exists() or len(manifest.read_text().splitlines()) < 3):
        time.sleep(0.02)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 130, err
    assert "run the same command again to submit the rest" in err
    made = len(manifest.read_text().splitlines())
    assert 3 <= made <= OBJECTS

    # ...and run again: the rest is submitted, every object has exactly one job, all COMPLETED.
    second = run_cli(state_dir, "transcribe", location, "--manifest", str(manifest), "--out", str(tmp_path / "out"),
                     "--json", timeout_s=300)
    assert second.returncode == 0, second.stderr
    assert f"{OBJECTS - made} to submit" in second.stderr or f"{made} already in" in second.stderr
    rows = json.loads(second.stdout)
    assert len(rows) == OBJECTS and {row["status"] for row in rows} == {"COMPLETED"}
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert len({e["source"] for e in entries}) == OBJECTS == len({e["jobId"] for e in entries})
    sourced = [job for job in all_jobs(running) if job.get("source", "").startswith(location)]
    assert len(sourced) == OBJECTS  # no object made a second job
    saved = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.txt"))
    assert saved[0] == "day 0/call-00.mp3.txt" and len(saved) == OBJECTS
    assert all(phrase in normalised((tmp_path / "out" / saved[1]).read_text()) for phrase in MEETING_PHRASES)

    # One object of the prefix by itself: its transcript printed, as a file's would be.
    single = run_cli(state_dir, "transcribe", f"s3://{bucket}/calls/day 1/call-01.wav", timeout_s=180)
    assert single.returncode == 0, single.stderr
    assert all(phrase in normalised(single.stdout) for phrase in MEETING_PHRASES)


def test_drop_folder_when_files_are_put_then_jobs_complete_with_transcripts_beside_them(twin):
    _, running = twin
    s3, bucket = s3_of(running), running["resources"]["bucket"]
    keys = [f"{running['inboxPrefix']}e2e/meeting-{n}.wav" for n in range(3)]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=AUDIO[0])
    deadline = time.monotonic() + 120
    missing = list(keys)
    while missing and time.monotonic() < deadline:
        listed = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"{running['inboxPrefix']}e2e/")
                  .get("Contents", [])}
        missing = [key for key in keys if f"{key}.txt" not in listed]
        time.sleep(0.5)
    assert not missing, f"no transcript beside {missing}"
    text = s3.get_object(Bucket=bucket, Key=f"{keys[0]}.txt")["Body"].read().decode()
    assert all(phrase in normalised(text) for phrase in MEETING_PHRASES)
    dropped = [job for job in all_jobs(running) if job.get("source") == f"s3://{bucket}/{keys[0]}"]
    assert len(dropped) == 1 and dropped[0]["status"] == "COMPLETED"  # the twin's user owns them

    # The same object's event, delivered again: no second job.
    sqs = boto3.client("sqs", endpoint_url=running["endpointUrl"], region_name=running["region"],
                       aws_access_key_id="x", aws_secret_access_key="x")
    event = {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                          "s3": {"bucket": {"name": bucket}, "object": {
                              "key": keys[0], "size": len(AUDIO[0]),
                              "eTag": s3.head_object(Bucket=bucket, Key=keys[0])["ETag"].strip('"')}}}]}
    sqs.send_message(QueueUrl=running["resources"]["queue_url"], MessageBody=json.dumps(event))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        attributes = sqs.get_queue_attributes(QueueUrl=running["resources"]["queue_url"],
                                              AttributeNames=["ApproximateNumberOfMessages",
                                                              "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        if not any(int(v) for v in attributes.values()):
            break
        time.sleep(0.3)
    again = [job for job in all_jobs(running) if job.get("source") == f"s3://{bucket}/{keys[0]}"]
    assert [job["jobId"] for job in again] == [dropped[0]["jobId"]]


def test_url_when_given_to_the_cli_then_fetched_by_a_worker_and_printed(twin):
    state_dir, _ = twin
    hits = []

    class Host(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "audio/mpeg")
            self.send_header("Content-Length", str(len(AUDIO[1])))
            self.end_headers()
            self.wfile.write(AUDIO[1])

    server = ThreadingHTTPServer(("127.0.0.1", 0), Host)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/episodes/meeting.mp3?token=t"
        result = run_cli(state_dir, "transcribe", url, timeout_s=180)
        # The SDK's way in for the same.
        running = twin[1]
        job = Client(running["apiUrl"], api_key=running["apiKey"]).transcribe_from(url, timeout_s=180)
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == 0, result.stderr
    assert all(phrase in normalised(result.stdout) for phrase in MEETING_PHRASES)
    assert job.status == "COMPLETED" and job["source"] == url and job["filename"] == "meeting.mp3"
    assert hits == ["/episodes/meeting.mp3?token=t"] * 2
