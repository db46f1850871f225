"""The one entry point of an evaluation run: a load test (and, with faults, a chaos run) on a target the
caller has made ready, a twin it started or a deployed stack; the CLI's `loadtest` calls only this."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from whisperq.aws.blobs import Blobs
from whisperq.aws.clients import Clients
from whisperq.aws.jobs_table import JobsTable
from whisperq.aws.queues import Queue
from whisperq.aws.traces import Traces
from whisperq.client import Client
from whisperq.config import Settings
from whisperq.evaluation.loadtest import LoadSpec, LoadTest


@dataclass
class Target:
    """Where a run goes: the API it submits through, the pipeline's resources and whose jobs they are."""

    api: Client
    settings: Settings
    clients: Clients
    owner: str
    config: dict[str, Any]  # what the run's summary says of the target
    queue_url: str | None = None  # known (a twin); None: found by the settings' queue names (a stack)
    dlq_url: str | None = None
    trace_filter: str | None = None
    twin: Any = field(default=None, repr=False)  # a chaos run restarts a twin's workers


def run(spec: LoadSpec, out_dir: Path, target: Target, log: Any, faults: Any = None) -> dict[str, Any]:
    """Run the load test (a chaos run when `faults` is given: a twin only); its summary."""
    settings, clients = target.settings, target.clients
    queue = Queue(clients, target.queue_url) if target.queue_url else Queue.by_name(clients, settings.queue_name)
    dlq = Queue(clients, target.dlq_url) if target.dlq_url else Queue.by_name(clients, settings.dlq_name)
    out_dir.mkdir(parents=True, exist_ok=True)
    test = LoadTest(spec, out_dir, target.api, JobsTable(clients, settings.table), Blobs(clients, settings.bucket),
                    queue, dlq, target.config, log=log, owner=target.owner, traces=Traces(clients),
                    trace_filter=target.trace_filter, faults=faults,
                    memory=target.twin.memory_mib if target.twin is not None else None,
                    tier=settings.tiers.default.id)
    if faults is None:
        return test.run()
    from whisperq.evaluation import chaos

    return chaos.run(target.twin, test, clients, log)
