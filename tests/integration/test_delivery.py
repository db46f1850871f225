"""The delivery protocol under at-least-once delivery, one interleaving a test: what happens when a
worker dies, a message comes twice, two workers race, or an invocation runs out of time. Against moto
over HTTP, with the synthetic engine (instant, and its transcript says how the audio was cut: one
segment for a whole file, one per chunk for a fanned-out one), on the 123 s passage (real speech, so
that the voice-activity detector finds its pauses)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace

import pytest
import requests
from aws_lambda_powertools import Logger
from botocore.exceptions import EndpointConnectionError

from tests.conftest import EXAMPLES
from tests.integration.conftest import delivery_of
from whisperq.aws.chunks import ChunkNotTaken
from whisperq.aws.job_leases import JobLeases, failing
from whisperq.aws.jobs_table import ConditionFailed
from whisperq.core.fanout import parse_chunk_message
from whisperq.core.jobs import JobStatus, Timeline
from whisperq.core.keys import chunk_result_key
from whisperq.core.leases import Lease
from whisperq.transcriber import handler as function
from whisperq.transcriber.attempts import Attempt, ChunkLessor, LeaseStillHeld
from whisperq.transcriber.engines.synthetic import SyntheticEngine

PASSAGE = EXAMPLES / "passage.ogg"


class WorkerKilled(BaseException):
    """A worker process dying: no `except Exception` on the way catches it, nothing is cleaned up."""


@pytest.fixture
def queue_config(queue_config):
    # Fan out anything over 40 s, no chunk under 20 s, six workers (six chunks for the passage on an idle
    # queue); leases of 2 s, so that a dead holder's lease runs out within the test.
    return replace(queue_config, fanout_min_duration_s=40, chunk_s=20, visibility_timeout_s=2, max_receive_count=5,
                   max_concurrency=6)


def new_worker(stack, engine=None):
    return function.build_runtime(stack.settings, stack.clients, engine or SyntheticEngine(0.0),
                                  Logger(service="t"), sleep=lambda s: None)


def handle(stack, worker, message, receive_count: int | None = None) -> list[str]:
    return worker.handle_message(message.body, delivery_of(stack, message, receive_count))


def upload_passage(stack) -> tuple[str, object]:
    created = stack.service.create_upload({"filename": "passage.ogg", "contentType": "audio/ogg",
                                           "contentLength": PASSAGE.stat().st_size})
    requests.put(created["uploadUrl"], data=PASSAGE.read_bytes(), headers=created["uploadHeaders"],
                 timeout=30).raise_for_status()
    [event] = stack.receive_all(1)
    return created["jobId"], event


def drain(stack, worker, limit: int = 40) -> list[str]:
    """Handle what is on the queue, one message at a time, deleting each handled one."""
    outcomes = []
    for _ in range(limit):
        batch = stack.queue.receive(1, 0)
        if not batch:
            return outcomes
        outcomes += handle(stack, worker, batch[0])
        stack.queue.delete(batch)
    return outcomes


def kill_when(client, operation: str, fragment: str) -> dict:
    """Kill the worker (raise WorkerKilled) as it sends the first `operation` request whose body holds
    `fragment`; returns a switch: set state["armed"] = False to let requests through again."""
    state = {"armed": True, "killed": 0}

    def maybe_kill(request, **kwargs):
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body or "")
        if state["armed"] and fragment in body:
            state["armed"] = False
            state["killed"] += 1
            raise WorkerKilled(f"killed while sending {operation}")

    client.meta.events.register(f"before-send.{operation}", maybe_kill)
    return state


def fail_heartbeats(request, **kwargs):
    if threading.current_thread().name.startswith("whisperq-heartbeat"):
        raise EndpointConnectionError(endpoint_url=request.url)


def empty(queue) -> None:
    queue._sqs.purge_queue(QueueUrl=queue.url)


def transcript_versions(stack, job_id: str) -> dict[str, set[str]]:
    """Every content (by ETag) each of the job's transcript objects was ever written with."""
    versions: dict[str, set[str]] = {}
    listing = stack.clients.s3.list_object_versions(Bucket=stack.settings.bucket, Prefix=f"transcripts/{job_id}/")
    for version in listing.get("Versions", []):
        versions.setdefault(version["Key"], set()).add(version["ETag"])
    return versions


def test_whole_file_attempt_killed_after_writing_outputs_when_retry_fans_out_then_transcript_unchanged(stack):
    """The race a fanned-out chaos run caught: attempt 1 found the queue busy and transcribed the file
    whole, wrote the five outputs and was killed before it marked the job COMPLETED. Its lease ran out,
    the message came back to an idle queue, and attempt 2 fanned the file out and merged the chunks
    into other outputs. A transcript, once written, must never change."""
    stack.clients.s3.put_bucket_versioning(Bucket=stack.settings.bucket,
                                           VersioningConfiguration={"Status": "Enabled"})
    job_id, event = upload_passage(stack)
    first, second = new_worker(stack), new_worker(stack)
    # Given a busy queue (a message waiting for every other worker), so attempt 1 transcribes it whole,
    stack.busy()
    # and a worker killed as it marks the job COMPLETED (after its outputs were written),
    switch = kill_when(stack.clients.dynamodb, "dynamodb.UpdateItem", '"COMPLETED"')
    with pytest.raises(WorkerKilled):
        handle(stack, first, event, receive_count=1)
    assert switch["killed"] == 1
    written = transcript_versions(stack, job_id)
    # when its lease runs out and the message returns to an idle queue,
    empty(stack.queue)
    time.sleep(2.2)
    handle(stack, second, event, receive_count=2)
    drain(stack, second)
    # then the job completes, and every transcript object holds what it held before (written once,
    # or written again with the same bytes).
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.COMPLETED
    after = transcript_versions(stack, job_id)
    assert set(after) == {f"transcripts/{job_id}/{job_id}.{fmt}" for fmt in ("txt", "json", "srt", "vtt", "tsv")}
    for key, etags in after.items():
        assert len(etags) == 1, f"{key} was written with {len(etags)} different contents"
        assert not written or etags == written.get(key, etags)


def test_whole_file_attempt_outlives_its_lease_when_newer_attempt_completes_then_late_writes_change_nothing(stack):
    """A slow attempt (its heartbeat lost) is overtaken: a newer attempt takes the job and completes
    it. When the slow one finishes, it must neither overwrite the transcript nor the job."""
    stack.clients.s3.put_bucket_versioning(Bucket=stack.settings.bucket,
                                           VersioningConfiguration={"Status": "Enabled"})
    job_id, event = upload_passage(stack)
    release = threading.Event()

    class Blocking(SyntheticEngine):
        def transcribe(self, audio, options):
            release.wait(30)
            return super().transcribe(audio, options)

    slow, fast = new_worker(stack, Blocking(0.0)), new_worker(stack)
    # No heartbeat lands (their DynamoDB writes fail as a lost network would), so the lease runs out.
    stack.clients.dynamodb.meta.events.register("before-send.dynamodb.UpdateItem", fail_heartbeats)
    stack.busy()  # busy: slow goes whole
    outcome: dict[str, object] = {}

    def run_slow():
        try:
            outcome["slow"] = handle(stack, slow, event, receive_count=1)
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test checks
            outcome["slow"] = exc

    thread = threading.Thread(target=run_slow)
    thread.start()
    time.sleep(2.5)  # the slow attempt's 2 s lease has run out
    empty(stack.queue)
    assert handle(stack, fast, event, receive_count=2)[0].startswith(("completed", "fanned-out"))
    drain(stack, fast)
    assert stack.jobs.get(job_id).status is JobStatus.COMPLETED
    before = transcript_versions(stack, job_id)
    release.set()
    thread.join(60)
    assert outcome["slow"] == ["skipped:COMPLETED"], outcome  # its commit refused: the job had ended
    assert transcript_versions(stack, job_id) == before
    assert stack.jobs.get(job_id).status is JobStatus.COMPLETED


# --- fan-out: chunks and merges -------------------------------------------------------------------
def split_passage(stack, worker) -> tuple[str, list]:
    """Upload the passage and let `worker` fan it out (the queue idle); the job id and its chunk messages."""
    job_id, event = upload_passage(stack)
    assert handle(stack, worker, event) == ["fanned-out:6"]
    messages = []
    deadline = time.monotonic() + 10
    while len(messages) < 6 and time.monotonic() < deadline:
        messages += stack.queue.receive(10, 0)
    return job_id, sorted(messages, key=lambda m: parse_chunk_message(m.body).chunk.index)


def test_chunk_when_delivered_twice_then_counted_once_and_the_job_completes(stack):
    worker = new_worker(stack)
    job_id, messages = split_passage(stack, worker)
    first = messages[0]
    stack.queue.send(first.body)  # a second copy of chunk 1's message (SQS delivers at least once)
    [copy] = [m for m in stack.queue.receive(10, 1) if m.body == first.body]
    assert handle(stack, worker, first) == ["chunk-done:0"]
    assert handle(stack, worker, copy) == ["skipped:chunk-done"]
    assert handle(stack, worker, first) == ["skipped:chunk-done"]
    outcomes = [handle(stack, worker, m)[0] for m in messages[1:]]
    assert outcomes == [f"chunk-done:{i}" for i in range(1, 5)] + ["completed:merged"]
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.COMPLETED and job.fanout.chunks_done == job.fanout.chunks == 6
    assert [chunk.attempts for chunk in worker.context.chunks.all(job_id)] == [1] * 6
    # A duplicate S3 event of the upload, after all of it: acknowledged, nothing redone.
    assert handle(stack, worker, copy) == ["skipped:COMPLETED"]


def test_chunk_when_its_worker_is_killed_midway_then_its_message_waits_out_the_lease_and_finishes(stack):
    worker = new_worker(stack)
    job_id, messages = split_passage(stack, worker)
    victim = messages[2]
    # A worker took chunk 3 under a 2 s lease and was killed before writing anything.
    worker.context.chunks.take(job_id, 2, Lease("dead-worker", time.time() + 2, victim.message_id), None)
    # Its own message comes back early: handed back (an item failure), never acknowledged.
    with pytest.raises(LeaseStillHeld):
        handle(stack, worker, victim)
    assert worker.context.chunks.get(job_id, 2).lease.id == "dead-worker"
    # Another copy of the message while the lease lives is a duplicate: the holder's message carries it.
    stack.queue.send(victim.body)
    [copy] = [m for m in stack.queue.receive(10, 1) if m.body == victim.body and m.message_id != victim.message_id]
    assert handle(stack, worker, copy) == ["skipped:chunk-leased-elsewhere"]
    time.sleep(2.1)
    assert handle(stack, worker, victim) == ["chunk-done:2"]
    for message in messages[:2] + messages[3:]:
        handle(stack, worker, message)
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.COMPLETED and job.fanout.chunks_done == 6
    assert worker.context.chunks.get(job_id, 2).done_by not in (None, "dead-worker")


def race(*calls) -> list:
    """Run the calls at once (released together by a barrier); their results, in order."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index, call):
        barrier.wait()
        try:
            results[index] = call()
        except Exception as exc:  # noqa: BLE001 - the outcome is what the tests check
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def test_last_two_chunks_when_they_finish_together_then_exactly_one_merge(stack):
    first, second = new_worker(stack), new_worker(stack)
    job_id, messages = split_passage(stack, first)
    for message in messages[:-2]:
        handle(stack, first, message)
    outcomes = race(lambda: handle(stack, first, messages[-2]), lambda: handle(stack, second, messages[-1]))
    kinds = sorted(o[0].split(":")[0] for o in outcomes)
    # One of them sees the count reach six and merges; the other counted its chunk (and, when it read the
    # count at six too, found the merge claimed by the first).
    assert kinds in (["chunk-done", "completed"], ["completed", "skipped"]), outcomes
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.COMPLETED and job.fanout.chunks_done == 6


def test_merge_when_two_workers_claim_it_at_once_then_one_merges_and_the_other_leaves(stack):
    first, second = new_worker(stack), new_worker(stack)
    job_id, messages = split_passage(stack, first)
    for message in messages[:-1]:
        handle(stack, first, message)
    # The last chunk counted without merging (its worker died right after counting it).
    last = messages[-1]
    chunks = first.context.chunks
    lease = Lease("last-worker", time.time() + 60, last.message_id)
    chunks.take(job_id, 5, lease, None)
    job = stack.jobs.get(job_id)
    first.context.blobs.put_text(chunk_result_key(job_id, job.fanout.chunk_plan_id, 5, lease.id), json.dumps(
        {"segments": [], "language": "en", "language_probability": 1.0, "duration_s": 1.0}), "application/json")
    assert chunks.count_done(job_id, 5, lease, 0.1).last
    job = stack.jobs.get(job_id)
    outcomes = race(lambda: first.fanout.merge(job, delivery_of(stack, messages[0])),
                    lambda: second.fanout.merge(job, delivery_of(stack, messages[1])))
    assert sorted(outcomes) == ["completed:merged", "skipped:merge-taken"], outcomes
    assert stack.jobs.get(job_id).status is JobStatus.COMPLETED


def test_merge_when_killed_after_writing_outputs_then_the_next_delivery_finishes_with_the_same_transcript(stack):
    stack.clients.s3.put_bucket_versioning(Bucket=stack.settings.bucket,
                                           VersioningConfiguration={"Status": "Enabled"})
    worker = new_worker(stack)
    job_id, messages = split_passage(stack, worker)
    for message in messages[:-1]:
        handle(stack, worker, message)
    kill_when(stack.clients.dynamodb, "dynamodb.UpdateItem", '"COMPLETED"')
    with pytest.raises(WorkerKilled):
        handle(stack, worker, messages[-1])
    written = transcript_versions(stack, job_id)
    assert len(written) == 5 and stack.jobs.get(job_id).status is JobStatus.PROCESSING
    time.sleep(2.2)  # the merge's lease runs out; the last chunk's message comes back
    assert handle(stack, worker, messages[-1], receive_count=2) == ["completed:merged"]
    assert stack.jobs.get(job_id).status is JobStatus.COMPLETED
    assert transcript_versions(stack, job_id) == written  # the same bytes written again, nothing else


# --- the invocation's time --------------------------------------------------------------------------
def test_long_file_when_the_invocation_has_not_the_time_then_fanned_out_even_with_a_busy_queue(stack):
    """A file that may not finish whole in the time the invocation has left is cut, busy queue or not:
    on Lambda, a timed-out invocation loses everything it did, on every attempt."""
    slow = new_worker(stack, SyntheticEngine(0.2))  # 123 s of audio: about 25 s whole
    job_id, event = upload_passage(stack)
    stack.busy()  # busy: whole, were there time
    delivery = replace(delivery_of(stack, event), deadline=time.monotonic() + 30)  # 30 s left
    assert slow.handle_message(event.body, delivery) == ["fanned-out:2"]  # each chunk fits a fresh invocation
    # With the whole function timeout ahead (and a faster engine), a busy queue gets it whole.
    empty(stack.queue)
    job_id, event = upload_passage(stack)
    stack.busy()
    assert new_worker(stack).handle_message(event.body, delivery_of(stack, event)) == ["completed"]


def test_upload_when_it_cannot_finish_in_any_invocation_and_fanout_is_off_then_failed_with_the_knobs_to_turn(
        stack):
    settings = replace(stack.settings, queue=replace(stack.settings.queue, fanout_min_duration_s=0,
                                                     function_timeout_s=10))
    worker = function.build_runtime(settings, stack.clients, SyntheticEngine(0.2), Logger(service="t"),
                                    sleep=lambda s: None)
    job_id, event = upload_passage(stack)
    assert handle(stack, worker, event) == ["failed"]
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.FAILED
    assert "function's timeout of 10 s" in job.error and "fanout_min_duration_s" in job.error



# --- stale attempts -------------------------------------------------------------------------------
def test_whole_job_take_when_the_job_was_handed_to_its_chunks_meanwhile_then_refused(stack):
    """A duplicate upload event read the job while QUEUED; by its take, the job was split and handed to
    its chunks: the take must fail (the chunk messages carry the job), not split it all again."""
    worker = new_worker(stack)
    job_id, _ = split_passage(stack, worker)
    assert stack.jobs.get(job_id).lease is None
    with pytest.raises(ConditionFailed):
        JobLeases(stack.jobs).take(job_id, Lease.new("duplicate", 60, time.time()), None, 2, Timeline(), None)
    job = stack.jobs.get(job_id)
    assert job.attempts == 1 and job.lease is None


def test_stale_chunk_attempt_when_it_gives_up_after_another_counted_its_chunk_then_the_job_is_not_failed(stack):
    """A chunk attempt that lost its lease to a newer one (which counted the chunk, maybe the last one)
    fails on its own last delivery: it must not fail the job."""
    worker = new_worker(stack)
    job_id, messages = split_passage(stack, worker)
    chunks = worker.context.chunks
    stale = Lease("stale", time.time() - 1, messages[0].message_id)
    chunks.take(job_id, 0, stale, None)
    assert handle(stack, worker, messages[0]) == ["chunk-done:0"]  # the newer attempt takes over and counts
    with pytest.raises(ChunkNotTaken):
        chunks.fail_job(job_id, 0, stale, failing("chunk 1 of 6 failed on all 5 attempts"))
    # Through the protocol, on the last delivery the queue allows: nothing fails.
    delivery = delivery_of(stack, messages[0], receive_count=stack.settings.queue.max_receive_count)
    attempt = Attempt(worker.context, ChunkLessor(worker.context, job_id, parse_chunk_message(messages[0].body).chunk,
                                                  6, delivery), delivery)
    attempt.lease = stale
    attempt.failed(RuntimeError("engine crashed"))
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.PROCESSING and job.error is None and job.fanout.chunks_done == 1
