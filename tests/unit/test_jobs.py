import pytest

from whisperq.core.errors import InvalidRequest
from whisperq.core.jobs import ALLOWED_TRANSITIONS, JobStatus, can_transition, new_job_id, sources_of, validate_job_id

S = JobStatus


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        (S.UPLOADING, S.QUEUED, True),
        (S.QUEUED, S.PROCESSING, True),
        (S.PROCESSING, S.COMPLETED, True),
        (S.PROCESSING, S.FAILED, True),
        (S.PROCESSING, S.PROCESSING, True),  # a new attempt takes over an expired lease
        (S.PROCESSING, S.QUEUED, True),  # released after a retryable failure
        (S.FAILED, S.QUEUED, True),  # only a dead-letter replay does this
        (S.COMPLETED, S.PROCESSING, False),
        (S.COMPLETED, S.QUEUED, False),
        (S.COMPLETED, S.FAILED, False),
        (S.FAILED, S.COMPLETED, False),
        (S.QUEUED, S.UPLOADING, False),
        (S.PROCESSING, S.UPLOADING, False),
    ],
)
def test_transition_table_when_asked_then_answers(current, target, allowed):
    assert can_transition(current, target) is allowed


def test_completed_when_final_then_has_no_way_out():
    assert ALLOWED_TRANSITIONS[S.COMPLETED] == frozenset()
    assert S.COMPLETED.is_final and S.FAILED.is_final and not S.PROCESSING.is_final


def test_sources_of_completed_is_processing_only():
    assert sources_of(S.COMPLETED) == {S.PROCESSING}


def test_new_job_id_when_created_then_is_a_valid_unique_uuid():
    ids = {new_job_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(validate_job_id(i) == i for i in ids)


@pytest.mark.parametrize("bad", ["", "123", "../etc/passwd", "6248633d-1631-41f1-9fa2-547eb5e6415", "x" * 36,
                                 "{6248633d-1631-41f1-9fa2-547eb5e6415a}"])
def test_validate_job_id_when_malformed_then_invalid_request(bad):
    with pytest.raises(InvalidRequest):
        validate_job_id(bad)


# --- the typed record --------------------------------------------------------------------------
def _a_job():
    from whisperq.core.jobs import FanOutState, Job, RunStats, Timeline
    from whisperq.core.leases import Lease

    return Job("6248633d-1631-41f1-9fa2-547eb5e6415a", S.PROCESSING, "a b.wav", "audio/wav",
               "audio/6248633d-1631-41f1-9fa2-547eb5e6415a/a b.wav", "2026-12-03T00:00:00.000Z",
               "2026-12-03T00:00:01.000Z", attempts=2, owner="alice", options={"beamSize": 5},
               callback_url="https://example.com/hook", expires_at=1_800_000_000,
               lease=Lease("lease-1", 1_700_000_000.5, "message-1"), receive_count=2, last_error="TransientError: x",
               result_key="results/x/lease-1.json", transcript_keys={"txt": "transcripts/x/x.txt"},
               timeline=Timeline(enqueued_at="2026-12-03T00:00:00.100Z", started_at="2026-12-03T00:00:00.200Z"),
               run=RunStats(queue_wait_s=0.1, audio_duration_s=123.4, cold_start=False, language="en"),
               fanout=FanOutState(chunks=6, chunks_done=2, chunk_plan_id="lease-0",
                                  fanned_out_at="2026-12-03T00:00:00Z", chunks_transcribe_s=3.5, split_s=0.7))


def test_record_when_stored_and_read_back_then_the_same_typed_job():
    from whisperq.aws.job_items import item_to_job, job_to_item

    job = _a_job()
    item = job_to_item(job)
    # One attribute per field, named in camelCase; the lease's fields prefixed; parts flattened.
    assert {"leaseId", "leaseExpiresAt", "leaseMessageId", "queueWaitS", "chunksDone", "chunkPlanId",
            "enqueuedAt", "resultKey", "lastError"} <= set(item)
    assert item["status"] == {"S": "PROCESSING"} and "lease" not in item and "fanout" not in item
    assert item_to_job(item) == job
    assert item_to_job({**item, "openOwner": {"S": "alice"}}) == job  # index keys are not the record's


def test_public_details_when_shown_then_timeline_measurements_and_progress_but_no_bookkeeping():
    details = _a_job().public_details()
    assert details == {"enqueuedAt": "2026-12-03T00:00:00.100Z", "startedAt": "2026-12-03T00:00:00.200Z",
                       "queueWaitS": 0.1, "audioDurationS": 123.4, "coldStart": False, "language": "en",
                       "chunks": 6, "chunksDone": 2, "fannedOutAt": "2026-12-03T00:00:00Z", "splitS": 0.7,
                       "lastError": "TransientError: x"}
