"""Replaying the dead-letter queue: jobs reset, messages moved send-then-delete, nothing lost."""

from __future__ import annotations

import json
import time

import pytest
from aws_lambda_powertools import Logger

from tests.conftest import EXAMPLES
from whisperq.aws.dlq import DeadLetterQueue
from whisperq.aws.job_leases import JobLeases
from whisperq.core.jobs import JobStatus, Timeline
from whisperq.core.leases import Lease
from whisperq.local.esm import lambda_record
from whisperq.local.lambda_context import LocalLambdaContext
from whisperq.transcriber import handler as function
from whisperq.transcriber.engines.synthetic import SyntheticEngine


def dead_letter(stack, filename: str) -> str:
    """A job whose upload failed for good: its real S3 event now sits in the DLQ."""
    job_id = stack.upload(EXAMPLES / "meeting.wav", filename=filename)
    [message] = stack.receive_all(1)
    stack.dlq.send(message.body)
    stack.queue.delete([message])
    stack.jobs.mark_queued(job_id)
    lease = Lease.new(message.message_id, 60, time.time())
    leases = JobLeases(stack.jobs)
    leases.take(job_id, lease, None, 3, Timeline(), None)
    leases.fail(job_id, lease, "failed on all attempts", dead_lettered=True)
    return job_id


@pytest.fixture
def dlq(stack):
    return DeadLetterQueue(stack.clients, stack.dlq, stack.queue, stack.jobs, sleep=lambda s: None)


def test_peek_when_dead_letters_then_listed_with_job_and_error_and_left_in_place(stack, dlq):
    job_id = dead_letter(stack, "a.wav")
    [letter] = dlq.peek()
    assert letter.job_id == job_id and letter.error == "failed on all attempts" and letter.job_status == "FAILED"
    assert [d.job_id for d in dlq.peek()] == [job_id]  # still there


def test_replay_when_job_selected_then_only_its_message_moves_and_the_job_runs_again(stack, dlq):
    first = dead_letter(stack, "first.wav")
    second = dead_letter(stack, "second.wav")
    assert dlq.replay(job_ids=[first], dry_run=True).moved and len(dlq.peek()) == 2  # dry run moves nothing
    report = dlq.replay(job_ids=[first])
    assert report.method == "send-then-delete" and len(report.moved) == 1 and report.jobs_reset == [first]
    assert [d.job_id for d in dlq.peek()] == [second]
    assert stack.jobs.get(first).status is JobStatus.QUEUED and not stack.jobs.get(first).dead_lettered
    function.reset(function.build_runtime(stack.settings, stack.clients, SyntheticEngine(0.0), Logger(service="t")))
    try:
        [message] = stack.receive_all(1)
        record = lambda_record(message, stack.resources.queue_arn, "us-east-1")
        assert function.handler({"Records": [record]}, LocalLambdaContext("t")) == {"batchItemFailures": []}
    finally:
        function.reset()
    assert stack.jobs.get(first).status is JobStatus.COMPLETED


def test_replay_all_when_native_redrive_missing_then_falls_back_and_moves_everything(stack, dlq):
    jobs = [dead_letter(stack, f"{i}.wav") for i in range(3)]
    report = dlq.replay(rate_per_s=100)
    # moto does not implement StartMessageMoveTask (HTTP 500): the fallback moved them.
    assert report.method == "send-then-delete" and len(report.moved) == 3 and sorted(report.jobs_reset) == sorted(jobs)
    assert dlq.peek() == [] and len(stack.receive_all(3)) == 3


def test_replay_when_job_already_completed_then_not_reset_but_message_still_moved(stack, dlq):
    job_id = dead_letter(stack, "a.wav")
    stack.clients.dynamodb.update_item(
        TableName=stack.settings.table,
        Key={"jobId": {"S": job_id}},
        UpdateExpression="SET #s = :c",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":c": {"S": "COMPLETED"}},
    )
    report = dlq.replay(job_ids=[job_id])
    assert report.jobs_reset == [] and len(report.moved) == 1
    assert "is COMPLETED (the worker acknowledges its message" in report.not_reset[0]
    assert report.lines() == ["moved 1 message(s) back to the transcription queue (send-then-delete)",
                              f"moved without a reset: {report.moved[0]}: job {job_id} is COMPLETED (the worker "
                              "acknowledges its message and changes nothing)"]


def test_peek_when_more_than_ten_dead_letters_then_sees_them_all_and_leaves_them_visible(stack, dlq):
    # Found by the 500-job chaos run: receives at visibility 0 kept returning the same ten messages,
    # so `dlq replay --all` left the rest behind.
    sent = {stack.dlq.send(json.dumps({"n": n})) for n in range(25)}
    assert {letter.message_id for letter in dlq.peek(limit=1000)} == sent
    assert stack.dlq.depth()["visible"] == 25 and stack.dlq.depth()["in_flight"] == 0
    assert len(dlq.peek(limit=7)) == 7


def test_peek_when_looked_at_again_and_again_then_the_receive_count_stays_what_it_was_when_dead_lettered(stack, dlq):
    """Looking at the DLQ is a ReceiveMessage (SQS has no other way); what it shows must not change."""
    # A message dead-lettered as SQS does it: moved with the receive count it had (every delivery allowed).
    stack.dlq.send(json.dumps({"n": 1}))
    for _ in range(stack.settings.queue.max_receive_count):
        stack.dlq.receive(1, 0, visibility_timeout_s=0)
    counts = [[letter.receive_count for letter in dlq.peek()] for _ in range(3)]
    assert counts == [[stack.settings.queue.max_receive_count]] * 3
