"""One local twin, used through its public surface: the CLI, the HTTP API, pre-signed URLs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import boto3
import pytest
import requests

from tests.conftest import EXAMPLES, MEETING_PHRASES, normalised
from tests.e2e.conftest import run_cli, start_twin, stop_twin

pytestmark = pytest.mark.e2e


def test_transcribe_when_speech_then_transcript_on_stdout_and_progress_on_stderr(twin):
    state_dir, _ = twin
    result = run_cli(state_dir, "transcribe", str(EXAMPLES / "meeting.wav"))
    assert result.returncode == 0, result.stderr
    text = normalised(result.stdout)
    for phrase in MEETING_PHRASES:
        assert phrase in text
    assert "COMPLETED" in result.stderr and "COMPLETED" not in result.stdout


def test_transcribe_when_diarize_then_each_line_names_its_speaker_and_the_json_counts_them(twin):
    state_dir, _ = twin
    result = run_cli(state_dir, "transcribe", "--speakers", "2", str(EXAMPLES / "dialogue.ogg"), timeout_s=180)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) >= 5 and all(line.startswith(("[SPEAKER_00] ", "[SPEAKER_01] ")) for line in lines), lines
    assert {line.split("]")[0] for line in lines} == {"[SPEAKER_00", "[SPEAKER_01"}
    both = run_cli(state_dir, "transcribe", "--speakers", "2", "--max-speakers", "3", str(EXAMPLES / "dialogue.ogg"))
    assert both.returncode == 2 and "not both" in both.stderr


def test_transcribe_when_every_container_format_then_every_transcript(twin):
    state_dir, _ = twin
    files = [str(EXAMPLES / f"meeting.{ext}") for ext in ("flac", "mp3", "m4a", "ogg")]
    files.append(str(EXAMPLES / "standup.wav"))
    result = run_cli(state_dir, "transcribe", "--json", *files, timeout_s=300)
    assert result.returncode == 0, result.stderr
    jobs = json.loads(result.stdout)
    assert [job["status"] for job in jobs] == ["COMPLETED"] * 5
    for job in jobs[:4]:
        text = normalised(requests.get(job["transcriptUrl"], timeout=10).text)
        assert "quarterly budget" in text and "hiring plan" in text
    standup = normalised(requests.get(jobs[4]["transcriptUrl"], timeout=10).text)
    assert "release notes" in standup and "documentation" in standup


def key(running: dict) -> dict:
    return {"x-api-key": running["apiKey"]}


def test_status_when_job_completed_then_json_with_details_and_urls(twin):
    state_dir, running = twin
    created = requests.post(
        f"{running['apiUrl']}/upload",
        headers=key(running),
        json={"filename": "meeting.wav", "contentType": "audio/wav",
              "contentLength": (EXAMPLES / "meeting.wav").stat().st_size},
        timeout=10,
    ).json()
    put = requests.put(
        created["uploadUrl"], data=(EXAMPLES / "meeting.wav").read_bytes(), headers=created["uploadHeaders"], timeout=30
    )
    assert put.status_code == 200
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        result = run_cli(state_dir, "status", created["jobId"])
        assert result.returncode == 0, result.stderr
        job = json.loads(result.stdout)
        if job["status"] == "COMPLETED":
            break
        time.sleep(0.5)
    assert job["status"] == "COMPLETED"
    assert set(job["transcriptUrls"]) == {"txt", "json", "srt", "vtt", "tsv"}
    assert job["details"]["queueWaitS"] < 10 and job["details"]["engine"] == "faster-whisper"
    vtt = requests.get(job["transcriptUrls"]["vtt"], timeout=10).text
    assert vtt.startswith("WEBVTT")


def test_transcribe_when_file_is_not_audio_then_exit_6_with_reason(twin, tmp_path):
    state_dir, _ = twin
    fake = tmp_path / "report.wav"
    fake.write_text("quarterly numbers, not audio\n" * 50)
    result = run_cli(state_dir, "transcribe", str(fake))
    assert result.returncode == 6
    assert "could not be decoded as audio" in result.stderr
    assert "Traceback" not in result.stderr


def test_status_when_unknown_job_then_exit_3_and_one_line(twin):
    state_dir, _ = twin
    result = run_cli(state_dir, "status", "6248633d-1631-41f1-9fa2-547eb5e6415a")
    assert result.returncode == 3
    assert result.stderr.strip().splitlines() == ["Error: no job with id '6248633d-1631-41f1-9fa2-547eb5e6415a'"]


def test_api_when_malformed_then_400_json_not_500(twin):
    _, running = twin
    response = requests.post(f"{running['apiUrl']}/upload", data=b"{oops", headers=key(running), timeout=10)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


def test_api_when_key_missing_or_wrong_then_403_json_and_health_stays_open(twin):
    _, running = twin
    api = running["apiUrl"]
    for headers in ({}, {"x-api-key": "wq_not-a-key"}):
        response = requests.get(f"{api}/jobs", headers=headers, timeout=10)
        assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"
    assert requests.get(f"{api}/health", timeout=10).json() == {"status": "ok"}
    # The state file holds the key: readable by its owner only.
    assert Path(running["logPath"]).with_name("twin.json").stat().st_mode & 0o077 == 0


def test_twin_when_running_then_workers_niced_below_moto_and_the_api(twin):
    # The control plane (moto, the API's front and containers, the X-Ray collector) keeps the
    # default priority; the workers run at WHISPERQ_WORKER_NICE (10), as Lambda never takes AWS's CPU.
    _, running = twin
    children = [int(p.name) for p in Path("/proc").iterdir()
                if p.name.isdigit() and _parent(int(p.name)) == running["pid"]]
    nice = sorted(os.getpriority(os.PRIO_PROCESS, pid) for pid in children)
    assert nice.count(10) == running["workers"] == 2, nice
    assert nice.count(0) >= 3 and set(nice) == {0, 10}, nice  # at least the two motos and the front


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def test_local_up_when_already_running_then_refuses_clearly(twin):
    state_dir, running = twin
    result = run_cli(state_dir, "local", "up", timeout_s=60)
    assert result.returncode == 10
    assert "already running" in result.stderr and str(running["pid"]) in result.stderr


def test_poison_message_when_it_keeps_failing_then_dead_lettered_and_job_says_why(twin):
    """maxReceiveCount = 2, visibility 2 s: two failed receives, then SQS moves it to the DLQ."""
    _, running = twin
    api = running["apiUrl"]
    created = requests.post(
        f"{api}/upload", json={"filename": "poison.wav", "contentType": "audio/wav",
                               "contentLength": (EXAMPLES / "meeting.wav").stat().st_size},
        headers=key(running), timeout=10,
    ).json()
    requests.put(
        created["uploadUrl"], data=(EXAMPLES / "meeting.wav").read_bytes(), headers=created["uploadHeaders"], timeout=30
    ).raise_for_status()
    sqs = boto3.client("sqs", endpoint_url=running["endpointUrl"], region_name=running["region"])
    dlq_url = running["resources"]["dlq_url"]
    job_id = created["jobId"]
    deadline = time.monotonic() + 90
    dead_letters: list = []
    while time.monotonic() < deadline and not dead_letters:
        # Peek with a zero visibility timeout so the message stays in the DLQ for the operator.
        messages = sqs.receive_message(
            QueueUrl=dlq_url, MaxNumberOfMessages=10, VisibilityTimeout=0, MessageSystemAttributeNames=["All"]
        ).get("Messages", [])
        dead_letters = [m for m in messages if job_id in m["Body"]]
        time.sleep(0.5)
    assert dead_letters, "the poison message never reached the dead-letter queue"
    assert int(dead_letters[0]["Attributes"]["ApproximateReceiveCount"]) >= 2
    job = requests.get(f"{api}/status/{job_id}", headers=key(running), timeout=10).json()
    assert job["status"] == "FAILED" and job["attempts"] == 2
    assert "failed on all 2 attempts" in job["error"] and "dead-letter queue" in job["error"]

    # The operator's view and a replay, through the CLI (the poison fault is still on, so it fails again).
    state_dir, _ = twin
    listed = run_cli(state_dir, "dlq", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [letter] = [d for d in json.loads(listed.stdout) if d["jobId"] == job_id]
    assert "injected poison fault" in letter["error"] and letter["receiveCount"] >= 2
    shown = run_cli(state_dir, "dlq", "show", letter["messageId"])
    assert shown.returncode == 0 and json.loads(shown.stdout)["jobId"] == job_id
    replayed = run_cli(state_dir, "dlq", "replay", "--job", job_id, "--json")
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout)["jobsReset"] == [job_id]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = requests.get(f"{api}/status/{job_id}", headers=key(running), timeout=10).json()
        if job["attempts"] > 2 and job["status"] == "FAILED":
            break
        time.sleep(0.5)
    assert job["attempts"] > 2, "the replayed job did not run again"


def _port_open(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, int(port))) == 0


def test_local_down_when_twin_runs_then_every_process_stops_and_ports_are_freed(tmp_path):
    # DynamoDB in a moto server of its own (WHISPERQ_MOTO_PROCESSES=2): both ports are freed.
    process, running = start_twin(tmp_path, {"WHISPERQ_QUEUE_MAX_CONCURRENCY": "1", "WHISPERQ_MOTO_PROCESSES": "2"})
    assert _port_open(running["apiUrl"]) and _port_open(running["endpointUrl"])
    assert _port_open(running["dynamodbEndpointUrl"]) and running["dynamodbEndpointUrl"] != running["endpointUrl"]
    status = run_cli(tmp_path, "local", "status")
    assert status.returncode == 0, status.stderr
    # Its processes' memory together: moto's two servers, the API and a worker with its model.
    assert json.loads(status.stdout)["residentMiB"] > 200
    result = run_cli(tmp_path, "local", "down")
    assert result.returncode == 0, result.stderr
    # `local down` returns once the twin has removed its state file; the process exits right after.
    assert process.wait(timeout=30) == 0
    assert not (tmp_path / "twin.json").exists()
    assert not _port_open(running["apiUrl"]) and not _port_open(running["endpointUrl"])
    assert not _port_open(running["dynamodbEndpointUrl"])
    after = run_cli(tmp_path, "status", "6248633d-1631-41f1-9fa2-547eb5e6415a")
    assert after.returncode == 5 and "whisperq local up" in after.stderr


def test_demo_when_run_then_prints_transcript_and_exits_0(tmp_path):
    result = run_cli(tmp_path, "demo", str(EXAMPLES / "meeting.wav"), timeout_s=180)
    assert result.returncode == 0, result.stderr
    assert "quarterly budget" in normalised(result.stdout)
    assert "twin stopped" in result.stderr


def test_twin_when_engine_is_openai_whisper_then_same_words_through_the_pipeline(tmp_path):
    process, running = start_twin(
        tmp_path / "state",
        {
            "WHISPERQ_ENGINE": "openai-whisper",
            "WHISPERQ_QUEUE_MAX_CONCURRENCY": "1",
            "WHISPERQ_CACHE_DIR": str(tmp_path / "cache"),
        },
    )
    try:
        assert running["engine"] == "openai-whisper"
        result = run_cli(tmp_path / "state", "transcribe", "--json", str(EXAMPLES / "meeting.wav"))
        assert result.returncode == 0, result.stderr
        job = json.loads(result.stdout)
        assert job["details"]["engine"] == "openai-whisper" and job["details"]["coldStart"] is True
        text = normalised(requests.get(job["transcriptUrl"], timeout=10).text)
        assert all(phrase in text for phrase in MEETING_PHRASES)
    finally:
        stop_twin(process)


def test_local_up_when_model_not_available_offline_then_fails_at_start_with_reason(tmp_path):
    env = {"WHISPERQ_MODEL": "large-v3", "WHISPERQ_QUEUE_MAX_CONCURRENCY": "1"}
    result = run_cli(tmp_path, "local", "up", timeout_s=120, env=env)
    assert result.returncode == 11
    assert "not in this deployment" in result.stderr and "tiny.en" in result.stderr
    assert "whisperq models fetch large-v3" in result.stderr
    assert not (tmp_path / "twin.json").exists()


def test_fuzz_when_schemathesis_explores_the_api_then_no_5xx_and_every_response_matches_the_schema(twin, tmp_path):
    """Property-based fuzzing of the running twin's API from its own OpenAPI document, bounded in
    examples and time. 'Schema-valid request rejected' is not checked: an opaque cursor or an option
    the model cannot honour is schema-valid and still, rightly, a 400."""
    import os
    import sys

    _, running = twin
    spec = requests.get(f"{running['apiUrl']}/openapi.json", headers=key(running), timeout=10)
    assert spec.status_code == 200
    (tmp_path / "openapi.json").write_text(spec.text)
    checks = (
        "not_a_server_error,status_code_conformance,content_type_conformance,"
        "response_schema_conformance,response_headers_conformance,unsupported_method"
    )
    st = os.path.join(os.path.dirname(sys.executable), "st")
    result = subprocess.run(
        [
            st,
            "run",
            str(tmp_path / "openapi.json"),
            "--url",
            running["apiUrl"],
            "-H",
            f"x-api-key: {running['apiKey']}",
            "--checks",
            checks,
            "--max-examples",
            "25",
            "--seed",
            "20261125",
            "--request-timeout",
            "20",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "generated" in result.stdout


def test_cli_when_no_wait_then_ids_and_wait_download_jobs_status_follow(twin, tmp_path):
    state_dir, _ = twin
    submitted = run_cli(
        state_dir, "transcribe", "--no-wait", str(EXAMPLES / "meeting.wav"), str(EXAMPLES / "standup.wav")
    )
    assert submitted.returncode == 0, submitted.stderr
    ids = submitted.stdout.split()
    assert len(ids) == 2 and all(len(i) == 36 for i in ids)
    waited = run_cli(state_dir, "wait", *ids, "--json", timeout_s=180)
    assert waited.returncode == 0, waited.stderr
    assert [job["status"] for job in json.loads(waited.stdout)] == ["COMPLETED", "COMPLETED"]
    srt = tmp_path / "meeting.srt"
    got = run_cli(state_dir, "download", ids[0], "--format", "srt", "--out", str(srt))
    assert got.returncode == 0 and srt.read_text().startswith("1\n00:00:00,000 --> ")
    listed = run_cli(state_dir, "jobs", "--status", "COMPLETED", "--limit", "500", "--json")
    assert set(ids) <= {job["jobId"] for job in json.loads(listed.stdout)}
    both = run_cli(state_dir, "status", *ids, "--json")
    assert [job["jobId"] for job in json.loads(both.stdout)] == ids


def test_cli_when_out_dir_and_format_then_one_file_per_input(twin, tmp_path):
    state_dir, _ = twin
    result = run_cli(
        state_dir,
        "transcribe",
        "--out",
        str(tmp_path),
        "--format",
        "vtt",
        "--word-timestamps",
        "--concurrency",
        "2",
        str(EXAMPLES / "meeting.flac"),
        str(EXAMPLES / "standup.wav"),
        timeout_s=180,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert (tmp_path / "meeting.vtt").read_text().startswith("WEBVTT")
    assert "release notes" in normalised((tmp_path / "standup.vtt").read_text())


def test_cli_when_cancelling_then_cancelled_and_a_second_cancel_exits_4(twin):
    state_dir, running = twin
    created = requests.post(
        f"{running['apiUrl']}/jobs",
        headers=key(running),
        json={"filename": "later.wav", "contentType": "audio/wav"},
        timeout=10,
    ).json()
    first = run_cli(state_dir, "cancel", created["jobId"], "--json")
    assert first.returncode == 0 and json.loads(first.stdout)["status"] == "CANCELLED"
    second = run_cli(state_dir, "cancel", created["jobId"])
    assert second.returncode == 4 and "already ended CANCELLED" in second.stderr


# --- what a user trips on --------------------------------------------------------------------------------
def interrupt_when(state_dir: Path, marker: str, *args: str) -> tuple[int, str, float]:
    """Run `whisperq transcribe ARGS`, send it a real SIGINT once its stderr shows `marker`; its exit
    status, its stderr, and the seconds it took to exit after the signal."""
    import signal
    import sys
    import threading

    process = subprocess.Popen([sys.executable, "-m", "whisperq.cli.main", "--state-dir", str(state_dir),
                                "transcribe", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    shown = threading.Event()

    def read() -> None:
        for line in process.stderr:
            seen.append(line)
            if marker in line:
                shown.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert shown.wait(120), "".join(seen)
    process.send_signal(signal.SIGINT)
    sent = time.monotonic()
    code = process.wait(timeout=30)
    took = time.monotonic() - sent
    reader.join(10)
    return code, "".join(seen), took


def test_ctrl_c_while_waiting_then_stops_at_once_and_says_how_to_follow_the_job(twin):
    state_dir, _ = twin
    code, stderr, took = interrupt_when(state_dir, "passage.ogg: waiting", str(EXAMPLES / "passage.ogg"))
    assert code == 130 and took < 3, (code, took, stderr)
    [job_id] = [line.split("job ")[1].split(")")[0] for line in stderr.splitlines() if "waiting (job" in line]
    assert f"passage.ogg: job {job_id} keeps running: `whisperq wait {job_id}`" in stderr
    waited = run_cli(state_dir, "wait", job_id[:8], "--json", timeout_s=180)  # a unique prefix will do
    assert waited.returncode == 0 and json.loads(waited.stdout)["jobId"] == job_id


def test_ctrl_c_while_uploading_then_names_the_file_whose_upload_did_not_finish(twin, tmp_path):
    state_dir, _ = twin
    big = tmp_path / "long.wav"
    with open(big, "wb") as handle:
        handle.truncate(400 * 1024 * 1024)  # sparse: no disk used, and slow enough to send to interrupt it
    code, stderr, took = interrupt_when(state_dir, "long.wav: uploading", str(big))
    assert code == 130 and took < 3, (code, took, stderr)
    assert "upload of long.wav interrupted: job " in stderr and "has no audio and will expire" in stderr


def test_out_when_two_files_share_a_stem_then_both_kept_and_a_rerun_refuses_before_uploading(twin, tmp_path):
    state_dir, _ = twin
    files = [str(EXAMPLES / "meeting.wav"), str(EXAMPLES / "meeting.mp3")]
    first = run_cli(state_dir, "transcribe", "--out", str(tmp_path), "--format", "vtt", *files, timeout_s=180)
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meeting.mp3.vtt", "meeting.wav.vtt"]
    before = len(json.loads(run_cli(state_dir, "jobs", "--limit", "1000", "--json").stdout))
    again = run_cli(state_dir, "transcribe", "--out", str(tmp_path), "--format", "vtt", *files)
    assert again.returncode == 4 and "already exist" in again.stderr and "nothing was uploaded" in again.stderr
    assert len(json.loads(run_cli(state_dir, "jobs", "--limit", "1000", "--json").stdout)) == before


def test_several_files_when_one_fails_then_the_others_printed_and_the_failure_listed_with_its_reason(twin, tmp_path):
    state_dir, _ = twin
    fake = tmp_path / "notaudio.wav"
    fake.write_text("not audio\n" * 100)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    refused = run_cli(state_dir, "transcribe", str(EXAMPLES / "meeting.wav"), str(empty))
    assert refused.returncode == 2 and "empty (0 bytes)" in refused.stderr and refused.stdout == ""
    result = run_cli(state_dir, "transcribe", str(EXAMPLES / "meeting.wav"), str(fake), str(EXAMPLES / "standup.wav"),
                     timeout_s=180)
    assert result.returncode == 6, result.stderr
    text = normalised(result.stdout)
    assert "quarterly budget" in text and "release notes" in text and "==>" not in result.stdout  # piped: plain
    assert "1 of 3 file(s) did not complete" in result.stderr
    assert "notaudio.wav (job " in result.stderr and "could not be decoded as audio" in result.stderr


def raw_request(running: dict, head: str, body: bytes = b"", read_timeout_s: float = 5) -> bytes:
    host, port = running["apiUrl"].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=read_timeout_s) as conn:
        conn.sendall(head.encode() + b"\r\n\r\n" + body)
        chunks = []
        try:
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


@pytest.mark.parametrize("length", ["-5", "abc", "1e3"])
def test_front_when_content_length_is_not_a_number_then_400_json_and_no_traceback(twin, length):
    state_dir, running = twin
    log = state_dir / "twin.log"
    before = log.stat().st_size  # the module's twin: only what this request logs
    answer = raw_request(running, f"POST /jobs HTTP/1.1\r\nHost: x\r\nx-api-key: {running['apiKey']}\r\n"
                                  f"Content-Length: {length}\r\nConnection: close")
    assert answer.startswith(b"HTTP/1.1 400") and b"Content-Length must be a whole number" in answer
    with open(log, "rb") as handle:
        handle.seek(before)
        assert b"Traceback" not in handle.read()


def test_front_when_body_is_shorter_than_announced_then_dropped_not_held_for_ever(twin):
    _, running = twin
    started = time.monotonic()
    answer = raw_request(running, f"POST /jobs HTTP/1.1\r\nHost: x\r\nx-api-key: {running['apiKey']}\r\n"
                                  "Content-Length: 100", b'{"filename"', read_timeout_s=30)
    assert answer == b"" and time.monotonic() - started < 20  # the front gave up on it (BODY_TIMEOUT_S)
    assert requests.get(f"{running['apiUrl']}/health", timeout=5).status_code == 200
