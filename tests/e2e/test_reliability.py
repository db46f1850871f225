"""Reliability on the real twin: a bounded chaos run (AWS errors, crashes, killed workers, slow,
poison and corrupt uploads) judged by its invariants, and a graceful stop that loses nothing."""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.conftest import run_cli
from whisperq.aws.blobs import Blobs
from whisperq.aws.clients import Clients
from whisperq.aws.dlq import DeadLetterQueue
from whisperq.aws.jobs_table import JobsTable
from whisperq.aws.queues import Queue
from whisperq.core.jobs import JobStatus
from whisperq.evaluation.loadtest import LoadSpec, LoadTest, tone_wav
from whisperq.local.twin import LOCAL_CREDENTIALS, Twin

pytestmark = pytest.mark.e2e

FAST = {"WHISPERQ_QUEUE_VISIBILITY_TIMEOUT_S": "3", "WHISPERQ_QUEUE_MAX_RECEIVE_COUNT": "3",
        "WHISPERQ_QUEUE_WAIT_TIME_S": "1"}


def test_chaos_run_when_faults_strike_then_every_invariant_holds_and_the_table_says_so(tmp_path):
    out = tmp_path / "chaos"
    result = run_cli(tmp_path / "state", "loadtest", "--jobs", "24", "--synthetic-seconds", "2",
                     "--set", "synthetic_seconds_per_audio_second=0.1",
                     "--faults", "aws_errors=0.2,api_errors=0.2,crash=0.05,slow=0.1,slow_s=5,kill_every_s=4,poison=0.1,"
                                 "corrupt=0.1,"
                                 "seed=1",
                     "--timeout", "150", "--out", str(out), env=FAST, timeout_s=400)
    assert result.returncode == 0, result.stderr[-3000:]
    chaos = json.loads(result.stdout)["chaos"]
    assert chaos["ok"] and len(chaos["checks"]) == 9
    for line in ("nothing lost", "no job went backwards", "replay brings dead-lettered jobs", "ok"):
        assert line in result.stderr
    facts = chaos["facts"]
    # The faults really struck: otherwise the invariants prove nothing.
    assert facts["workersKilledByTheTwin"] >= 1 and facts["workersReplaced"] >= facts["workersKilledByTheTwin"]
    assert facts["retries"] > 0 and facts["attempts"] > facts["jobs"] - facts["kinds"]["corrupt"]
    assert facts["kinds"]["poison"] >= 1 and facts["kinds"]["corrupt"] >= 1 and facts["deadLettered"] >= 1
    assert facts["final"]["COMPLETED"] == facts["jobs"] - facts["kinds"]["corrupt"]
    assert facts["final"]["FAILED"] == facts["kinds"]["corrupt"]
    reported = run_cli(tmp_path / "state", "report", str(out), timeout_s=120)
    assert reported.returncode == 0, reported.stderr
    markdown = (out / "report.md").read_text()
    assert "## Chaos run invariants: run-01 (all hold)" in markdown and "| nothing lost" in markdown


def test_chaos_run_when_the_spec_is_nonsense_then_usage_error_before_anything_starts(tmp_path):
    result = run_cli(tmp_path, "loadtest", "--jobs", "2", "--synthetic-seconds", "1", "--faults", "explode=1",
                     timeout_s=60)
    assert result.returncode == 2 and "unknown fault 'explode=1'" in result.stderr


def test_stop_when_workers_hold_jobs_then_they_finish_or_release_and_nothing_is_lost(tmp_path):
    env = {**FAST, "WHISPERQ_ENGINE": "synthetic", "WHISPERQ_SYNTHETIC_SECONDS_PER_AUDIO_SECOND": "0.5",
           "WHISPERQ_QUEUE_VISIBILITY_TIMEOUT_S": "60", "WHISPERQ_QUEUE_BATCH_SIZE": "3",
           "WHISPERQ_QUEUE_MAX_BATCHING_WINDOW_S": "1"}
    with Twin(environ=env, log_file=str(tmp_path / "twin.log")) as twin:
        clients = Clients(twin.settings, LOCAL_CREDENTIALS)
        jobs, queue = JobsTable(clients, twin.settings.table), Queue(clients, twin.resources.queue_url)
        test = LoadTest(LoadSpec(jobs=8, synthetic_seconds=4, direct=True), tmp_path / "run", None, jobs,
                        Blobs(clients, twin.settings.bucket), queue, Queue(clients, twin.resources.dlq_url), {})
        for index in range(8):
            test._submit(index, (f"tone-{index}.wav", tone_wav(4), "audio"))
        ids = [r.job_id for r in test.records]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(jobs.get(i).status is JobStatus.PROCESSING for i in ids):
            time.sleep(0.1)
        assert any(jobs.get(i).status is JobStatus.PROCESSING for i in ids), "no job started"
        twin.stop_workers()  # SIGTERM, as `whisperq local down` sends
        statuses = {i: jobs.get(i).status for i in ids}
        # Nothing is left half-done: no job is still PROCESSING, and no message stays invisible
        # (each was deleted after its job completed, or given back at once for the next worker).
        assert JobStatus.PROCESSING not in statuses.values(), statuses
        depth = queue.depth()
        assert depth["in_flight"] == 0
        assert depth["visible"] == sum(s is not JobStatus.COMPLETED for s in statuses.values())
        finished_before_restart = sum(s is JobStatus.COMPLETED for s in statuses.values())
        assert 1 <= finished_before_restart < 8
        twin.restart_workers({})
        test.wait_for(set(ids), time.time() + 60)
        final = [jobs.get(i) for i in ids]
        assert all(j.status is JobStatus.COMPLETED for j in final)
        assert all(j.attempts == 1 for j in final)  # finished or given back: never an attempt lost


def test_worker_dies_on_the_last_delivery_then_job_failed_with_the_reason_and_the_dlq_keeps_its_message(tmp_path):
    """The worker SIGKILLs itself on every job (crash=1) and the queue allows one delivery: the message
    is dead-lettered, and the reaper ends the job FAILED with the reason, without touching the DLQ."""
    env = {**FAST, "WHISPERQ_ENGINE": "synthetic", "WHISPERQ_FAULTS": "crash=1,seed=3",
           "WHISPERQ_QUEUE_VISIBILITY_TIMEOUT_S": "2", "WHISPERQ_QUEUE_MAX_RECEIVE_COUNT": "1"}
    with Twin(environ=env, workers=1, log_file=str(tmp_path / "twin.log")) as twin:
        clients = Clients(twin.settings, LOCAL_CREDENTIALS)
        jobs, queue = JobsTable(clients, twin.settings.table), Queue(clients, twin.resources.queue_url)
        dead_letters = Queue(clients, twin.resources.dlq_url)
        test = LoadTest(LoadSpec(jobs=1, synthetic_seconds=2, direct=True), tmp_path / "run", None, jobs,
                        Blobs(clients, twin.settings.bucket), queue, dead_letters, {})
        test._submit(0, ("tone.wav", tone_wav(2), "audio"))
        [job_id] = [r.job_id for r in test.records]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and jobs.get(job_id).status is not JobStatus.FAILED:
            time.sleep(0.3)
        job = jobs.get(job_id)
        assert job.status is JobStatus.FAILED, job
        assert job.dead_lettered and "stopped on its last attempt (delivery 1 of 1)" in job.error
        assert f"`whisperq dlq replay --job {job_id}`" in job.error
        assert twin.jobs_reaped == 1 and twin.workers_replaced >= 1
        dlq = DeadLetterQueue(clients, dead_letters, queue, jobs)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not dlq.peek():
            time.sleep(0.5)
        looks = [[(d.job_id, d.receive_count, d.job_status) for d in dlq.peek()] for _ in range(3)]
        assert looks == [[(job_id, 1, "FAILED")]] * 3  # looking at it changes nothing


def test_callbacks_when_receivers_hang_then_no_transcriber_waits_and_a_third_job_starts_at_once(tmp_path):
    """The probe's slow receiver: it answers headers and then drips a byte every second. Two jobs call it
    back; the two workers must be free for a third job within a few seconds."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    hits = []

    class Drip(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            hits.append(time.monotonic())
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(60):
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(1)

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Drip)
    receiver.daemon_threads = True
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
    env = {**FAST, "WHISPERQ_ENGINE": "synthetic", "WHISPERQ_SYNTHETIC_SECONDS_PER_AUDIO_SECOND": "0.1"}
    try:
        with Twin(environ=env, workers=2, log_file=str(tmp_path / "twin.log")) as twin:
            from whisperq.api_handler.service import JobService

            clients = Clients(twin.settings, LOCAL_CREDENTIALS)
            jobs = JobsTable(clients, twin.settings.table)
            blobs = Blobs(clients, twin.settings.bucket)
            service = JobService(twin.settings, jobs, blobs, allow_private_callbacks=True)
            from tests.integration.conftest import post_form

            calling = []
            for index in range(2):
                created = service.create_job({"filename": f"c{index}.wav", "contentType": "audio/wav",
                                              "callbackUrl": url}, "owner")
                post_form(created, tone_wav(2)).raise_for_status()
                calling.append(created["jobId"])
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and len(hits) < 2:
                time.sleep(0.1)
            assert len(hits) == 2, [jobs.get(i).status for i in calling]  # both callbacks hang now
            started = time.monotonic()
            third = service.create_with_audio({"filename": "third.wav", "contentType": "audio/wav"}, "owner",
                                              tone_wav(2)).job_id
            while time.monotonic() - started < 20 and jobs.get(third).status is not JobStatus.COMPLETED:
                time.sleep(0.1)
            took = time.monotonic() - started
            assert jobs.get(third).status is JobStatus.COMPLETED and took < 5, took
            assert all(jobs.get(i).status is JobStatus.COMPLETED for i in calling)
            # Each hanging attempt was cut at its 10 s deadline and will be tried again (not 60 s of drip).
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not all(
                    (jobs.get(i).callback_status or "").startswith("retrying") for i in calling):
                time.sleep(0.2)
            assert all("deadline" in jobs.get(i).callback_status for i in calling), \
                [jobs.get(i).callback_status for i in calling]
    finally:
        receiver.shutdown()
        receiver.server_close()
