"""The sparse index of open jobs: a job is in it from its creation until it ends, again after a
dead-letter replay revives it, and reading many jobs at once takes every one of them."""

from __future__ import annotations

from whisperq.core.jobs import Job, JobStatus, iso, new_job_id, utc_now


def new_job(stack, owner: str | None = "alice") -> Job:
    now = iso(utc_now())
    job_id = new_job_id()
    details = {"owner": owner} if owner else {}
    return stack.jobs.create(Job(job_id, JobStatus.UPLOADING, "a.wav", "audio/wav", f"audio/{job_id}/a.wav", now, now,
                                 details=details))


def test_open_index_when_jobs_move_then_lists_exactly_the_owners_open_ones_with_their_status(stack):
    done, failed, cancelled, working = (new_job(stack) for _ in range(4))
    someone_elses = new_job(stack, owner="bob")
    assert stack.jobs.list_open("alice") == {j.job_id: JobStatus.UPLOADING for j in (done, failed, cancelled, working)}

    for job in (done, failed, working):
        stack.jobs.transition(job.job_id, JobStatus.QUEUED)
        stack.jobs.transition(job.job_id, JobStatus.PROCESSING)
    stack.jobs.transition(done.job_id, JobStatus.COMPLETED)
    stack.jobs.transition(failed.job_id, JobStatus.FAILED, changes={"error": "not audio"})
    stack.jobs.transition(cancelled.job_id, JobStatus.CANCELLED)

    assert stack.jobs.list_open("alice") == {working.job_id: JobStatus.PROCESSING}
    assert stack.jobs.list_open("bob") == {someone_elses.job_id: JobStatus.UPLOADING}
    # The table keeps every job; only the index forgets the ended ones.
    assert stack.jobs.get(done.job_id).status is JobStatus.COMPLETED
    assert "openOwner" not in stack.jobs.get(done.job_id).details


def test_open_index_when_a_failed_job_is_replayed_then_it_is_open_again_under_its_owner(stack):
    job = new_job(stack)
    unowned = new_job(stack, owner=None)
    for each in (job, unowned):
        stack.jobs.transition(each.job_id, JobStatus.FAILED)
    assert stack.jobs.list_open("alice") == {} and stack.jobs.list_open("default") == {}

    # What the dead-letter replay does (whisperq.aws.dlq): FAILED -> QUEUED.
    for each in (job, unowned):
        stack.jobs.transition(each.job_id, JobStatus.QUEUED, expected=[JobStatus.FAILED])
    assert stack.jobs.list_open("alice") == {job.job_id: JobStatus.QUEUED}
    # A job without an owner is the default owner's, as the API treats it.
    assert stack.jobs.list_open("default") == {unowned.job_id: JobStatus.QUEUED}


def test_get_many_when_more_than_one_request_holds_then_every_existing_job_once(stack):
    jobs = [new_job(stack) for _ in range(130)]  # two BatchGetItem requests
    wanted = [j.job_id for j in jobs] + [jobs[0].job_id, new_job_id()]  # a repeat and one that does not exist
    read = stack.jobs.get_many(wanted)
    assert sorted(j.job_id for j in read) == sorted(j.job_id for j in jobs)
    assert all(j.status is JobStatus.UPLOADING and j.details["owner"] == "alice" for j in read)
    assert stack.jobs.get_many([]) == []
