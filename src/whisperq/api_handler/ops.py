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
        self._queues: dict[str, tuple[Queue, Queue]] = {}

    def _queue_pairs(self) -> dict[str, tuple[Queue, Queue]]:
        """Each model tier's queue and DLQ, by tier id, the default's first (looked up once per container)."""
        if not self._queues:
            base, dead = self.settings.queue_name, self.settings.dlq_name
            self._queues = {tier.id: (Queue.by_name(self.clients, tier.queue_name(base)),
                                      Queue.by_name(self.clients, tier.dlq_name(base, dead)))
                            for tier in self.settings.tiers}
        return self._queues

    def queues(self, owner: str) -> dict[str, Any]:
        """GET /ops/queues: SQS's approximate counts (the default tier's, and every tier's when there are
        several), and this key's latest FAILED jobs with their reasons."""
        pairs = self._queue_pairs()
        depths = {tier: (_camel(queue.depth()), _camel(dlq.depth())) for tier, (queue, dlq) in pairs.items()}
        queue, dead = depths[self.settings.tiers.default.id]
        failed, _ = self.jobs.list_by_owner(owner, RECENT_FAILURES, JobStatus.FAILED)
        view: dict[str, Any] = {
            "queue": queue,
            "deadLetters": dead,
            "failures": [{"jobId": job.job_id, "filename": job.filename, "error": job.error or "",
                          "failedAt": job.timeline.failed_at,
                          "deadLettered": job.dead_lettered} for job in failed],
        }
        if len(depths) > 1:
            models = {tier.id: tier.model for tier in self.settings.tiers}
            view["tiers"] = {tier: {"model": models[tier], "queue": q, "deadLetters": d}
                             for tier, (q, d) in depths.items()}
        return view


def _camel(depth: dict[str, int]) -> dict[str, int]:
    return {"visible": depth["visible"], "inFlight": depth["in_flight"], "delayed": depth["delayed"]}
