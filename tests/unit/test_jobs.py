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
