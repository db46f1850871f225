"""Chunks in items of their own: a chunk write stays small however long the job, and the count on the
job item moves only with the chunk's done mark (one transaction)."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from tests.conftest import EXAMPLES
from whisperq.aws.chunks import ChunkNotTaken, ChunksTable
from whisperq.aws.job_leases import JobLeases
from whisperq.core.fanout import plan_chunks
from whisperq.core.jobs import FanOutState, JobStatus, RunStats, Timeline
from whisperq.core.leases import Lease

FOUR_HOURS_S = 4 * 3600


def item_size_bytes(item: dict) -> int:
    """An upper bound of DynamoDB's size of an item (names and values in UTF-8; a number as its digits)."""

    def size(value: dict) -> int:
        (kind, inner), = value.items()
        if kind in ("S", "N"):
            return len(str(inner).encode("utf-8")) + (1 if kind == "N" else 0)
        if kind in ("BOOL", "NULL"):
            return 1
        if kind == "M":
            return 3 + sum(len(k.encode("utf-8")) + size(v) + 1 for k, v in inner.items())
        if kind == "L":
            return 3 + sum(size(v) + 1 for v in inner)
        raise AssertionError(f"unexpected attribute type {kind}")

    return sum(len(name.encode("utf-8")) + size(value) for name, value in item.items())


def raw_item(stack, table: str, key: dict) -> dict:
    return stack.clients.dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True)["Item"]


@pytest.fixture
def chunks(stack):
    return ChunksTable(stack.clients, stack.settings.chunks_table, stack.jobs, 86400)


def test_chunk_write_when_the_job_lasts_four_hours_then_every_item_it_touches_stays_under_2_kb(stack, chunks):
    # The longest job validation allows (4 h) in the smallest chunks it allows (10 s): 1,440 chunks.
    plan = plan_chunks(FOUR_HOURS_S, [(0.0, FOUR_HOURS_S)], 10)
    assert len(plan) >= 1400
    job_id = stack.upload(EXAMPLES / "meeting.wav")
    stack.jobs.mark_queued(job_id)
    leases = JobLeases(stack.jobs)
    splitter = Lease.new("s3-event", 60, time.time())
    leases.take(job_id, splitter, None, 1, Timeline(started_at="2026-12-03T00:00:00.000Z"), 0.5)
    leases.record_plan(job_id, splitter, FanOutState(chunks=len(plan), chunk_plan_id=splitter.id,
                                                     fanned_out_at="2026-12-03T00:00:01.000Z"),
                       RunStats(audio_duration_s=FOUR_HOURS_S, download_s=12.5, decode_s=30.25))
    leases.mark_sent(job_id, splitter, 41.5)
    last = plan[-1].index
    lease = Lease.new("chunk-message", 60, time.time())
    chunks.take(job_id, last, lease, None)
    counted = chunks.count_done(job_id, last, lease, 2.3456)
    assert counted.job.fanout.chunks_done == 1 and not counted.last
    chunk_item = raw_item(stack, stack.settings.chunks_table, {"jobId": {"S": job_id}, "chunk": {"N": str(last)}})
    job_item = raw_item(stack, stack.settings.table, {"jobId": {"S": job_id}})
    assert item_size_bytes(chunk_item) < 2048, chunk_item
    assert item_size_bytes(job_item) < 2048, job_item
    assert Decimal(job_item["chunksDone"]["N"]) == 1


def test_count_when_lease_lost_or_job_cancelled_then_neither_the_mark_nor_the_count_moves(stack, chunks):
    job_id = stack.upload(EXAMPLES / "meeting.wav")
    stack.jobs.mark_queued(job_id)
    leases = JobLeases(stack.jobs)
    splitter = Lease.new("s3-event", 60, time.time())
    leases.take(job_id, splitter, None, 1, Timeline(), None)
    leases.record_plan(job_id, splitter, FanOutState(chunks=2, chunk_plan_id=splitter.id), RunStats())
    leases.mark_sent(job_id, splitter, 0.1)
    # A worker's lease ran out and another took the chunk over: the first one's count changes nothing.
    slow = Lease("slow", time.time() - 1, "m1")
    chunks.take(job_id, 0, slow, None)
    fast = Lease.new("m1", 60, time.time())
    chunks.take(job_id, 0, fast, slow)
    with pytest.raises(ChunkNotTaken):
        chunks.count_done(job_id, 0, slow, 1.0)
    assert stack.jobs.get(job_id).fanout.chunks_done == 0 and chunks.get(job_id, 0).done_by is None
    assert not chunks.count_done(job_id, 0, fast, 1.0).last
    # Cancelled: the other chunk's count is refused, its mark not set.
    other = Lease.new("m2", 60, time.time())
    chunks.take(job_id, 1, other, None)
    stack.jobs.cancel(job_id)
    with pytest.raises(ChunkNotTaken) as refused:
        chunks.count_done(job_id, 1, other, 1.0)
    assert refused.value.job.status is JobStatus.CANCELLED
    assert chunks.get(job_id, 1).done_by is None and stack.jobs.get(job_id).fanout.chunks_done == 1
