"""A worker that dies with the last delivery its queue allows (a crash, out of memory, the function's
timeout): SQS dead-letters the message and nothing of ours runs for it again. The reaper ends such a
job FAILED with the reason, from the note the worker left, and leaves alone every job whose message
still lives. Against moto over HTTP, with the synthetic engine made to die where a test wants it."""

from __future__ import annotations

import time
from dataclasses import replace

import pytest
import requests
from aws_lambda_powertools import Logger

from tests.conftest import EXAMPLES
from tests.integration.conftest import delivery_of
from tests.integration.test_delivery import WorkerKilled, split_passage
from whisperq.core.jobs import JobStatus
from whisperq.core.leases import STRANDED_GRACE_S, Lease
from whisperq.transcriber import handler as function
from whisperq.transcriber import reaper
from whisperq.transcriber.attempts import LeaseStillHeld
from whisperq.transcriber.engines.synthetic import SyntheticEngine

VISIBILITY_S = 2


@pytest.fixture
def queue_config(queue_config):
    # Two deliveries, leases of 2 s; fan out from 40 s, no chunk under 20 s, six workers (six chunks when idle).
    return replace(queue_config, visibility_timeout_s=VISIBILITY_S, max_receive_count=2, function_timeout_s=30,
                   fanout_min_duration_s=40, chunk_s=20, max_concurrency=6)


def dying_engine(after_s: float = 0.0) -> SyntheticEngine:
    """An engine whose worker dies `after_s` seconds into a transcription."""
    def die(seconds: float) -> None:
        time.sleep(after_s)
        raise WorkerKilled("the worker died")
    return SyntheticEngine(0.0, sleep=die)


def worker(stack, engine=None):
    return function.build_runtime(stack.settings, stack.clients, engine or SyntheticEngine(0.0),
                                  Logger(service="t"), sleep=lambda s: None)


def upload(stack, path=EXAMPLES / "meeting.wav", content_type="audio/wav"):
    created = stack.service.create_upload({"filename": path.name, "contentType": content_type,
                                           "contentLength": path.stat().st_size})
    requests.put(created["uploadUrl"], data=path.read_bytes(), headers=created["uploadHeaders"],
                 timeout=30).raise_for_status()
    [event] = stack.receive_all(1)
    return created["jobId"], event


def reaper_of(stack, clock=time.time):
    the_reaper = reaper.build(stack.settings, stack.clients, Logger(service="t"))
    the_reaper.clock = clock
    return the_reaper


def later(seconds: float):
    return lambda: time.time() + seconds


def test_worker_dies_on_last_delivery_when_its_message_is_out_of_hand_then_job_failed_with_the_reason(stack):
    job_id, event = upload(stack)
    with pytest.raises(WorkerKilled):
        worker(stack, dying_engine()).handle_message(event.body, delivery_of(stack, event, receive_count=2))
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.PROCESSING and job.last_call is not None and not job.last_call.timed_out
    # While the message could still be in the worker's hands (its lease, its visibility), nothing happens.
    assert reaper_of(stack).sweep() == []
    assert stack.jobs.get(job_id).status is JobStatus.PROCESSING
    [reaped] = reaper_of(stack, later(VISIBILITY_S + STRANDED_GRACE_S + 1)).sweep()
    assert reaped.job_id == job_id
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.FAILED and job.dead_lettered and job.lease is None and job.last_call is None
    assert "the transcription stopped on its last attempt (delivery 2 of 2)" in job.error
    assert "crashed or ran out of memory" in job.error
    assert f"whisperq dlq replay --job {job_id}" in job.error
    # A second sweep finds nothing more to do.
    assert reaper_of(stack, later(VISIBILITY_S + STRANDED_GRACE_S + 1)).sweep() == []


def test_worker_runs_out_of_time_on_last_delivery_then_failed_as_timed_out(stack):
    job_id, event = upload(stack)
    # 6.5 s left in the invocation (enough to start); the mark 2 s before its end, the kill at the end.
    delivery = replace(delivery_of(stack, event, receive_count=2), deadline=time.monotonic() + 6.5)
    with pytest.raises(WorkerKilled):
        worker(stack, dying_engine(after_s=6.0)).handle_message(event.body, delivery)
    assert stack.jobs.get(job_id).last_call.timed_out
    [reaped] = reaper_of(stack, later(VISIBILITY_S + STRANDED_GRACE_S + 1)).sweep()
    assert "ran out of time on its last attempt" in reaped.error
    assert "function timeout above 30 s" in reaped.error


def test_last_delivery_that_ends_well_then_no_note_is_left_and_nothing_is_reaped(stack):
    job_id, event = upload(stack)
    assert worker(stack).handle_message(event.body, delivery_of(stack, event, receive_count=2)) == ["completed"]
    job = stack.jobs.get(job_id)
    assert job.status is JobStatus.COMPLETED and job.last_call is None
    assert reaper_of(stack, later(3600)).sweep() == []


def test_earlier_delivery_dies_then_not_reaped_because_its_message_comes_back(stack):
    job_id, event = upload(stack)
    with pytest.raises(WorkerKilled):
        worker(stack, dying_engine()).handle_message(event.body, delivery_of(stack, event, receive_count=1))
    assert stack.jobs.get(job_id).last_call is None
    assert reaper_of(stack, later(3600)).sweep() == []
    assert stack.jobs.get(job_id).status is JobStatus.PROCESSING


def test_last_delivery_handed_back_to_a_live_holder_that_then_dies_then_reaped_when_its_lease_runs_out(stack):
    job_id, event = upload(stack)
    # Delivery 1 took the job (lease of 10 s) and died; its message came back early, on its last delivery.
    holder = Lease("dead-holder", time.time() + 10, event.message_id)
    stack.jobs.get(job_id)
    worker(stack).context.leases.take(job_id, holder, None, 1, stack.jobs.get(job_id).timeline, None)
    with pytest.raises(LeaseStillHeld):
        worker(stack).handle_message(event.body, delivery_of(stack, event, receive_count=2))
    assert reaper_of(stack, later(VISIBILITY_S + STRANDED_GRACE_S + 1)).sweep() == []  # the holder's lease lives
    [reaped] = reaper_of(stack, later(10 + STRANDED_GRACE_S + 1)).sweep()
    assert reaped.job_id == job_id and reaped.status is JobStatus.FAILED


def test_job_held_by_another_message_when_a_duplicate_died_on_its_last_delivery_then_left_to_the_holder(stack):
    job_id, event = upload(stack)
    with pytest.raises(WorkerKilled):
        worker(stack, dying_engine()).handle_message(event.body, delivery_of(stack, event, receive_count=2))
    # Another copy of the upload's event took the job over, and works on it under a live lease.
    job = stack.jobs.get(job_id)
    live = Lease("other-message-holder", time.time() + 3600, "another-message")
    worker(stack).context.leases.take(job_id, live, job.lease, 1, job.timeline, None)
    assert reaper_of(stack, later(VISIBILITY_S + STRANDED_GRACE_S + 1)).sweep() == []
    assert stack.jobs.get(job_id).status is JobStatus.PROCESSING


def test_chunk_worker_dies_on_its_last_delivery_then_job_failed_naming_the_chunk(stack):
    splitter = worker(stack)
    job_id, messages = split_passage(stack, splitter)
    for message in messages[:2]:
        splitter.handle_message(message.body, delivery_of(stack, message))
    victim = messages[2]
    with pytest.raises(WorkerKilled):
        worker(stack, dying_engine()).handle_message(victim.body, delivery_of(stack, victim, receive_count=2))
    assert reaper_of(stack).sweep() == []
    [reaped] = reaper_of(stack, later(VISIBILITY_S + STRANDED_GRACE_S + 1)).sweep()
    assert reaped.job_id == job_id and reaped.fanout.failed_chunk == 2
    assert "chunk 3 of 6 stopped on its last attempt" in reaped.error


def test_replayed_job_when_an_old_chunk_note_is_left_then_not_reaped_again(stack):
    splitter = worker(stack)
    job_id, messages = split_passage(stack, splitter)
    victim = messages[0]
    with pytest.raises(WorkerKilled):
        worker(stack, dying_engine()).handle_message(victim.body, delivery_of(stack, victim, receive_count=2))
    assert len(reaper_of(stack, later(VISIBILITY_S + STRANDED_GRACE_S + 1)).sweep()) == 1
    stack.jobs.revive(job_id)  # `whisperq dlq replay --job` does this before it moves the message back
    assert reaper_of(stack, later(3600)).sweep() == []
    assert stack.jobs.get(job_id).status is JobStatus.QUEUED


def test_chunk_note_when_a_duplicate_message_took_the_chunk_over_then_left_to_it(stack):
    splitter = worker(stack)
    job_id, messages = split_passage(stack, splitter)
    victim = messages[1]
    with pytest.raises(WorkerKilled):
        worker(stack, dying_engine()).handle_message(victim.body, delivery_of(stack, victim, receive_count=2))
    time.sleep(VISIBILITY_S + 0.2)  # its lease runs out; a copy of its message (a re-sent chunk) takes the chunk
    chunks = splitter.context.chunks
    record = chunks.get(job_id, 1)
    chunks.take(job_id, 1, Lease("copy-holder", time.time() + 3600, "a-copy-of-the-message"), record.lease)
    assert chunks.get(job_id, 1).last_call is None  # the take by another message removed the dead one's note
    assert reaper_of(stack, later(VISIBILITY_S + STRANDED_GRACE_S + 1)).sweep() == []
    assert stack.jobs.get(job_id).status is JobStatus.PROCESSING


def test_whole_job_note_when_a_duplicate_took_the_job_and_released_it_then_not_reaped(stack):
    job_id, event = upload(stack)
    with pytest.raises(WorkerKilled):
        worker(stack, dying_engine()).handle_message(event.body, delivery_of(stack, event, receive_count=2))
    job = stack.jobs.get(job_id)
    # A copy of the upload's event took the job over on its first delivery and failed (its message comes back).
    copy = Lease("copy-holder", time.time() + 3600, "a-copy-of-the-event")
    leases = worker(stack).context.leases
    leases.take(job_id, copy, job.lease, 1, job.timeline, None)
    leases.release(job_id, copy, "TransientError: S3 was slow")
    assert reaper_of(stack, later(3600)).sweep() == []
    assert stack.jobs.get(job_id).status is JobStatus.QUEUED


def test_open_job_when_its_dead_letter_is_replayed_before_the_reaper_came_then_not_reaped(stack):
    from whisperq.aws.dlq import DeadLetterQueue

    job_id, event = upload(stack)
    with pytest.raises(WorkerKilled):
        worker(stack, dying_engine()).handle_message(event.body, delivery_of(stack, event, receive_count=2))
    time.sleep(VISIBILITY_S + 0.2)  # its lease and its message's visibility run out: SQS dead-letters it
    stack.queue.delete([event])
    stack.dlq.send(event.body)
    report = DeadLetterQueue(stack.clients, stack.dlq, stack.queue, stack.jobs).replay(job_ids=[job_id])
    assert len(report.moved) == 1 and "still open" in report.not_reset[0]
    assert reaper_of(stack, later(3600)).sweep() == []
    [message] = stack.receive_all(1)
    assert worker(stack).handle_message(message.body, delivery_of(stack, message)) == ["completed"]


def test_batch_when_its_worker_dies_before_reaching_a_last_delivery_then_that_job_is_reaped_too(stack):
    job_id, event = upload(stack)
    # The record waits behind another in its batch: noted when the invocation starts; the worker dies first.
    worker(stack).note_last_call(event.body, delivery_of(stack, event, receive_count=2))
    assert stack.jobs.get(job_id).last_call is not None
    [reaped] = reaper_of(stack, later(VISIBILITY_S + STRANDED_GRACE_S + 1)).sweep()
    assert reaped.job_id == job_id and "crashed or ran out of memory" in reaped.error
