"""Read-only operator routes: how deep the queue is, how much is in flight, what was dead-lettered and
why (the caller's own failed jobs), for the page's operator view and for scripts."""

from __future__ import annotations

from typing import Any

from whisperq.aws.clients import Clients
from whisperq.aws.jobs_table import JobsTable
from whisperq.aws.queues import Queue
from whisperq.config import Settings
from whisperq.core.jobs import JobStatus

RECENT_FAILURES = 5


class Operations:
    def __init__(self, settings: Settings, clients: Clients, jobs: JobsTable):
        self.settings = settings
        self.clients = clients
        self.jobs = jobs
        self._queues: tuple[Queue, Queue] | None = None

    def _queue_pair(self) -> tuple[Queue, Queue]:
        if self._queues is None:  # looked up once per container
            self._queues = (Queue.by_name(self.clients, self.settings.queue_name),
                            Queue.by_name(self.clients, self.settings.dlq_name))
        return self._queues

    def queues(self, owner: str) -> dict[str, Any]:
        """GET /ops/queues: SQS's approximate counts, and this key's latest FAILED jobs with their reasons."""
        queue, dlq = self._queue_pair()
        failed, _ = self.jobs.list_by_owner(owner, RECENT_FAILURES, JobStatus.FAILED)
        return {
            "queue": _camel(queue.depth()),
            "deadLetters": _camel(dlq.depth()),
            "failures": [{"jobId": job.job_id, "filename": job.filename, "error": job.error or "",
                          "failedAt": job.timeline.failed_at,
                          "deadLettered": job.dead_lettered} for job in failed],
        }


def _camel(depth: dict[str, int]) -> dict[str, int]:
    return {"visible": depth["visible"], "inFlight": depth["in_flight"], "delayed": depth["delayed"]}
