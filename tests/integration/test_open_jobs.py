"""The sparse index of open jobs: a job is in it from its creation until it ends, again after a
dead-letter replay revives it, and reading many jobs at once takes every one of them."""

from __future__ import annotations

from whisperq.aws.job_leases import JobLeases
from whisperq.core.jobs import DEFAULT_OWNER, Job, JobStatus, RunStats, Timeline, iso, new_job_id, utc_now
from whisperq.core.leases import Lease


def new_job(stack, owner: str | None = "alice") -> Job:
    now = iso(utc_now())
    job_id = new_job_id()
    return stack.jobs.create(Job(job_id, JobStatus.UPLOADING, "a.wav", "audio/wav", f"audio/{job_id}/a.wav", now, now,
                                 owner=owner or DEFAULT_OWNER))


def take(stack, job: Job) -> Lease:
    lease = Lease.new("m", 60, 0.0)
    JobLeases(stack.jobs).take(job.job_id, lease, None, 1, Timeline(), None)
    return lease


def test_open_index_when_jobs_move_then_lists_exactly_the_owners_open_ones_with_their_status(stack):
    done, failed, cancelled, working = (new_job(stack) for _ in range(4))
    someone_elses = new_job(stack, owner="bob")
    assert stack.jobs.list_open("alice") == {j.job_id: JobStatus.UPLOADING for j in (done, failed, cancelled, working)}

    leases = JobLeases(stack.jobs)
    held = {}
    for job in (done, failed, working):
        stack.jobs.mark_queued(job.job_id)
        held[job.job_id] = take(stack, job)
    leases.complete(done.job_id, held[done.job_id], {}, RunStats(), Timeline())
    leases.fail(failed.job_id, held[failed.job_id], "not audio")
    stack.jobs.cancel(cancelled.job_id)

    assert stack.jobs.list_open("alice") == {working.job_id: JobStatus.PROCESSING}
    assert stack.jobs.list_open("bob") == {someone_elses.job_id: JobStatus.UPLOADING}
    # The table keeps every job; only the index forgets the ended ones.
    assert stack.jobs.get(done.job_id).status is JobStatus.COMPLETED
    item = stack.clients.dynamodb.get_item(TableName=stack.settings.table, Key={"jobId": {"S": done.job_id}})["Item"]
    assert "openOwner" not in item


def test_open_index_when_a_failed_job_is_replayed_then_it_is_open_again_under_its_owner(stack):
    job = new_job(stack)
    unowned = new_job(stack, owner=None)
    for each in (job, unowned):
        stack.jobs.mark_queued(each.job_id)
        JobLeases(stack.jobs).fail(each.job_id, take(stack, each), "failed on all attempts", dead_lettered=True)
    assert stack.jobs.list_open("alice") == {} and stack.jobs.list_open("default") == {}

    # What the dead-letter replay does (whisperq.aws.dlq): FAILED -> QUEUED.
    for each in (job, unowned):
        stack.jobs.revive(each.job_id)
    assert stack.jobs.list_open("alice") == {job.job_id: JobStatus.QUEUED}
    # A job without an owner is the default owner's, as the API treats it.
    assert stack.jobs.list_open("default") == {unowned.job_id: JobStatus.QUEUED}


def test_get_many_when_more_than_one_request_holds_then_every_existing_job_once(stack):
    jobs = [new_job(stack) for _ in range(130)]  # two BatchGetItem requests
    wanted = [j.job_id for j in jobs] + [jobs[0].job_id, new_job_id()]  # a repeat and one that does not exist
    read = stack.jobs.get_many(wanted)
    assert sorted(j.job_id for j in read) == sorted(j.job_id for j in jobs)
    assert all(j.status is JobStatus.UPLOADING and j.owner == "alice" for j in read)
    assert stack.jobs.get_many([]) == []
