"""The CLI without a server: help, usage errors and exit codes, settings, parameters, completion."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from whisperq.cli import main  # noqa: F401 - registers every command
from whisperq.cli.app import cli


@pytest.fixture
def run(tmp_path, monkeypatch):
    for var in ("WHISPERQ_API_URL", "WHISPERQ_API_KEY", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
        monkeypatch.delenv(var, raising=False)

    def invoke(*args, env=None):
        return CliRunner().invoke(cli, ["--state-dir", str(tmp_path), *args], env=env or {})

    return invoke


@pytest.mark.parametrize(
    ("args", "exit_code", "fragment"),
    [
        (["--help"], 0, "transcribe"),
        (["transcribe", "--help"], 0, "--word-timestamps"),
        (["dlq", "replay", "--help"], 0, "send"),
        (["status"], 2, "Missing argument"),
        (["status", "6248633d-1631-41f1-9fa2-547eb5e6415a"], 5, "whisperq local up"),
        (["jobs"], 5, "no local twin runs"),
        (["transcribe", "/nonexistent.wav"], 2, "no such file"),
        (["dlq", "replay"], 2, "--all, or --job"),
        (["dlq", "purge"], 2, "--yes"),
        (["local", "status"], 5, "no local twin is running"),
        (["infra", "params", "--format", "yaml"], 2, "Invalid value"),
    ],
)
def test_cli_when_invoked_then_exit_code_and_message(run, args, exit_code, fragment):
    result = run(*args)
    assert result.exit_code == exit_code, result.output
    assert fragment in result.output
    assert "Traceback" not in result.output


def test_transcribe_when_file_type_unsupported_then_refused_before_any_upload(run, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not audio")
    result = run("--api-url", "http://127.0.0.1:9", "transcribe", str(notes))
    assert result.exit_code == 2 and "unsupported file type .txt" in result.output


def test_api_when_unreachable_then_exit_5_one_line(run, tmp_path):
    audio = tmp_path / "a.wav"
    audio.write_bytes(b"RIFF")
    result = run("--api-url", "http://127.0.0.1:9", "transcribe", str(audio))
    assert result.exit_code == 5 and "cannot reach the whisperq API" in result.output


def test_config_show_when_variables_set_then_values_and_sources(run):
    result = run(
        "config",
        "show",
        "--json",
        env={"WHISPERQ_ENGINE": "openai-whisper", "WHISPERQ_QUEUE_BATCH_SIZE": "4", "WHISPERQ_CALLBACK_SECRET": "x"},
    )
    assert result.exit_code == 0, result.output
    rows = {row["setting"]: row for row in json.loads(result.output)}
    assert rows["engine"] == {"setting": "engine", "value": "openai-whisper", "source": "$WHISPERQ_ENGINE"}
    assert rows["model"]["source"] == "default"
    assert rows["queue.batch_size"]["value"] == 4 and rows["queue.batch_size"]["source"] == "$WHISPERQ_QUEUE_BATCH_SIZE"
    assert rows["callback_secret"]["value"] == "(set)"  # never printed


def test_infra_params_when_out_of_aws_limits_then_refused(run):
    ok = run("infra", "params", "--format", "json", env={"WHISPERQ_QUEUE_MAX_CONCURRENCY": "10"})
    assert ok.exit_code == 0 and json.loads(ok.output)["MaxConcurrency"] == "10"
    bad = run("infra", "params", env={"WHISPERQ_QUEUE_MAX_CONCURRENCY": "1"})
    assert bad.exit_code == 2 and "max_concurrency must be 2..1000" in bad.output


def test_shell_completion_when_asked_then_click_writes_a_script():
    result = CliRunner().invoke(cli, [], prog_name="whisperq", env={"_WHISPERQ_COMPLETE": "bash_source"})
    assert result.exit_code == 0 and "_WHISPERQ_COMPLETE" in result.output and "complete " in result.output


def test_sdk_client_when_the_service_says_try_again_then_retried_with_backoff_and_other_errors_not(monkeypatch):
    from whisperq.client import Client, InvalidRequestError, ServiceError

    answers = iter([503, 429, 201, 400, 503, 503, 503, 503])
    sent, slept = [], []

    class Response:
        def __init__(self, status):
            self.status_code = status

        def json(self):
            return {"jobId": "x"} if self.status_code == 201 else {"error": {"message": f"status {self.status_code}"}}

    class Session:
        headers: dict = {}

        def request(self, method, url, **kwargs):
            sent.append(kwargs["headers"]["Idempotency-Key"])
            return Response(next(answers))

    client = Client("http://127.0.0.1:1", session=Session(), sleep=slept.append)
    assert client.create_upload("a.wav", "audio/wav", size_bytes=9) == {"jobId": "x"}
    assert slept == [0.5, 1.0] and len(sent) == 3
    assert len(set(sent)) == 1  # every retry of one create carries its key: one job, however often sent
    with pytest.raises(InvalidRequestError) as bad:  # a 400 is the caller's to fix: not sent again
        client.create_upload("a.wav", "audio/wav", size_bytes=9)
    assert bad.value.exit_code == 2 and len(sent) == 4
    with pytest.raises(ServiceError) as down:  # still unavailable after 3 retries: exit 7
        client.create_upload("a.wav", "audio/wav", size_bytes=9)
    assert down.value.exit_code == 7 and len(sent) == 8 and slept[-3:] == [0.5, 1.0, 2.0]
    assert len(set(sent)) == 3  # a new create, a new key


def test_job_table_when_rendered_then_language_with_probability_and_chunk_progress():
    from rich.console import Console

    from whisperq.cli.jobs import _job_table

    jobs = [{"jobId": "j1", "status": "COMPLETED", "filename": "f.ogg", "createdAt": "t",
             "details": {"audioDurationS": 8.1, "language": "fr", "languageProbability": 0.4388}},
            {"jobId": "j2", "status": "PROCESSING", "filename": "long.wav", "createdAt": "t",
             "details": {"chunks": 20, "chunksDone": 7}}]
    console = Console(width=200, record=True)
    console.print(_job_table(jobs))
    text = console.export_text()
    assert "fr (0.44)" in text and "PROCESSING 7/20 chunks" in text


# --- messages that say what to do next (found by a new user) ----------------------------------------------
def test_api_url_when_it_has_no_scheme_then_usage_error_with_the_url_it_meant(run):
    result = run("--api-url", "127.0.0.1:39191", "status", "6248633d-1631-41f1-9fa2-547eb5e6415a")
    assert result.exit_code == 2 and "e.g. http://127.0.0.1:39191" in result.output
    assert "unexpected" not in result.output


def test_dlq_when_no_twin_and_no_aws_credentials_then_says_both_ways_forward(run, monkeypatch, tmp_path):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    result = run("dlq", "list")
    assert result.exit_code == 5, result.output
    assert "no local twin runs" in result.output and "whisperq local up" in result.output
    assert "AWS_PROFILE" in result.output and "Unable to locate credentials" not in result.output


def test_banner_when_faults_are_on_then_says_so_and_which_ones_act_only_in_load_tests():
    from whisperq.cli.twin import _faults_lines

    assert _faults_lines("") == []
    lines = _faults_lines("crash=0.5,poison=0.1,seed=3")
    assert lines[0].startswith("  FAULTS ON  ") and "crash=0.5" in lines[0]
    assert "whisperq loadtest --faults" in lines[1]
