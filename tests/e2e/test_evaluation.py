"""`whisperq loadtest` and `whisperq report`: bounded runs on private twins with the synthetic engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.conftest import run_cli

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

pytestmark = pytest.mark.e2e


def test_loadtest_sweep_and_report_when_run_then_every_job_recorded_and_report_has_the_figures(tmp_path):
    out = tmp_path / "results"
    result = run_cli(tmp_path / "state", "loadtest", "--jobs", "8", "--synthetic-seconds", "4",
                     "--set", "synthetic_seconds_per_audio_second=0.05", "--sweep", "max_concurrency=1,2",
                     "--out", str(out), "--timeout", "120", "--probe", "4", timeout_s=300)
    assert result.returncode == 0, result.stderr
    runs = json.loads(result.stdout)["runs"]
    assert [run["config"]["workers"] for run in runs] == [1, 2]
    for run in runs:
        assert run["jobs"] == run["completed"] == 8 and run["unfinished"] == 0
        assert run["audioSeconds"] == 32 and run["jobsPerS"] > 0 and run["latencyS"]["p50"] > 0
        assert run["config"]["engine"] == "synthetic"
        # The engine's share of the workers' time: a fraction, whatever the machine's speed (how small
        # it is depends on the machine; benchmarks measure that, not tests).
        assert 0 < run["engineShare"] <= 1
        # The twin's memory by part, before, at the peak and after: each worker, the API, moto.
        memory = run["treeRssMiB"]
        workers = {f"whisperq-worker-{i}" for i in range(run["config"]["workers"])}
        assert workers | {"whisperq-api", "whisperq-moto", "twin"} <= set(memory["peak"])
        assert memory["before"]["total"] <= memory["peak"]["total"]
        assert memory["peak"]["total"] == pytest.approx(sum(v for k, v in memory["peak"].items() if k != "total"),
                                                        abs=0.5)
        assert all(memory["peak"][worker] > 30 for worker in workers)  # a Python process with its engine
    run_dirs = sorted(p for p in out.iterdir() if p.is_dir())
    for run, run_dir in zip(runs, run_dirs, strict=True):  # ... and it is what the jobs' own times say
        rows = [json.loads(line) for line in (run_dir / "jobs.jsonl").read_text().splitlines()]
        engine_s = sum(row["transcribeS"] for row in rows)
        assert run["engineShare"] == pytest.approx(engine_s / (run["config"]["workers"] * run["wallS"]), abs=2e-3)
    assert [p.name for p in run_dirs] == ["run-01-max_concurrency=1", "run-02-max_concurrency=2"]
    rows = [json.loads(line) for line in (run_dirs[0] / "jobs.jsonl").read_text().splitlines()]
    assert len(rows) == 8
    for row in rows:
        assert row["submittedAt"] <= row["uploadedAt"] <= row["startedAt"] <= row["transcribedAt"] <= row["endedAt"]
        assert row["modelReadyAt"] <= row["startedAt"] and row["enqueuedAt"] <= row["startedAt"]
        assert row["status"] == "COMPLETED" and row["transcribeS"] is not None and row["queueWaitS"] is not None
    assert (run_dirs[0] / "samples.jsonl").read_text().strip()
    # The probe timed the control plane all along: status reads of the run's jobs, creates, cancels.
    for run, run_dir in zip(runs, run_dirs, strict=True):
        probed = [json.loads(line) for line in (run_dir / "probe.jsonl").read_text().splitlines()]
        assert {row["route"] for row in probed} == {"GET /jobs/{id}", "POST /jobs", "DELETE /jobs/{id}"}
        assert all(row["ok"] and row["ms"] > 0 for row in probed), [r for r in probed if not r["ok"]]
        for route in ("GET /jobs/{id}", "POST /jobs"):
            figures = run["probe"][route]
            assert figures["requests"] >= 3 and figures["failed"] == 0
            assert 0 < figures["p50Ms"] <= figures["p99Ms"] <= figures["maxMs"]
        assert "GET /jobs/{id} p50/p99" in result.stderr
    # Every job's stages came back from the twin's X-Ray (collector -> moto's X-Ray API -> the run).
    for run, run_dir in zip(runs, run_dirs, strict=True):
        assert run["traces"]["jobsTraced"] == 8, run["traces"]
        assert run["traces"]["meanStageS"]["transcribe"] > 0 and run["traces"]["meanStageS"]["api"] > 0
        traced = [json.loads(line) for line in (run_dir / "traces.jsonl").read_text().splitlines()]
        run_jobs = {json.loads(line)["jobId"] for line in (run_dir / "jobs.jsonl").read_text().splitlines()}
        assert {row["jobId"] for row in traced} == run_jobs
        # (modelLoad only where a cold start carried a job: the first message is often S3's TestEvent.)
        assert {"api", "download", "decode", "transcribe", "upload"} <= {row["stage"] for row in traced}

    reported = run_cli(tmp_path / "state", "report", str(out), timeout_s=120)
    assert reported.returncode == 0, reported.stderr
    markdown = (out / "report.md").read_text()
    for figure in ("jobs/s", "audio s / wall s", "p50 s", "p95 s", "p99 s", "upload->start p50 s", "drain s",
                   "run-01-max_concurrency=1", "run-02-max_concurrency=2", "Stage breakdown", "from X-Ray traces",
                   "GET /jobs/{id} p50/p99 ms", "POST /jobs p50/p99 ms", "engine share of workers' time"):
        assert figure in markdown
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 6 and "<table>" in page
    for name in ("throughput.png", "latency_cdf.png", "stages.png", "queue_depth.png", "rtf.png", "probe_latency.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")


def test_loadtest_when_asked_for_too_much_or_nonsense_then_refused(tmp_path):
    result = run_cli(tmp_path, "loadtest", "--jobs", "5", timeout_s=60)
    assert result.returncode == 2 and "audio files or synthetic seconds" in result.stderr
    result = run_cli(tmp_path, "loadtest", "--jobs", "20000", "--synthetic-seconds", "1", timeout_s=60)
    assert result.returncode == 2


def test_loadtest_when_pointed_at_a_stack_then_it_uses_the_stacks_api_queues_and_traces(twin, tmp_path):
    # The running twin stands in for a deployed stack: its API URL and key, its resources by name,
    # its key looked up in (moto's) API Gateway, its traces read through the X-Ray API.
    state_dir, running = twin
    resources = running["resources"]
    env = {"WHISPERQ_BUCKET": resources["bucket"], "WHISPERQ_TABLE": resources["table"],
           "WHISPERQ_QUEUE_NAME": resources["queue_url"].rsplit("/", 1)[-1],
           "WHISPERQ_DLQ_NAME": resources["dlq_url"].rsplit("/", 1)[-1],
           "AWS_ENDPOINT_URL_DYNAMODB": running["dynamodbEndpointUrl"],
           "AWS_ACCESS_KEY_ID": "whisperq-local", "AWS_SECRET_ACCESS_KEY": "whisperq-local",
           "AWS_REGION": running["region"]}
    out = tmp_path / "stack-run"
    result = run_cli(tmp_path / "no-twin-here", "--api-url", running["apiUrl"], "--api-key", running["apiKey"],
                     "--endpoint-url", running["endpointUrl"], "loadtest", "--stack", "--jobs", "3",
                     "--audio", str(EXAMPLES / "meeting.wav"), "--trace-filter", "", "--timeout", "120",
                     "--out", str(out), env=env, timeout_s=200)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["config"]["target"] == "deployed stack"
    assert summary["completed"] == 3 and summary["traces"]["jobsTraced"] == 3
    assert (out / "run-01" / "traces.jsonl").read_text().count("transcribe") >= 3

    refused = run_cli(tmp_path / "no-twin-here", "--api-url", running["apiUrl"], "--api-key", running["apiKey"],
                      "loadtest", "--stack", "--jobs", "1", "--synthetic-seconds", "1", "--sweep", "batch_size=1,2",
                      env=env, timeout_s=60)
    assert refused.returncode == 2 and "--stack loads the stack as deployed" in refused.stderr
