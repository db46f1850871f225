"""Integration fixtures: a real moto server over HTTP on 127.0.0.1, fresh resources per test."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from moto.server import ThreadedMotoServer

from whisperq.api_handler.service import JobService
from whisperq.aws.blobs import Blobs
from whisperq.aws.clients import Clients
from whisperq.aws.jobs_table import JobsTable
from whisperq.aws.provision import Resources, provision
from whisperq.aws.queues import Message, Queue
from whisperq.config import Settings
from whisperq.local import moto_patches
from whisperq.queue_config import QueueConfig


@pytest.fixture(scope="session")
def moto_endpoint():
    # The same patched moto as the twin runs (whisperq.local.moto_patches), so every integration test
    # checks that the patches change no behaviour.
    moto_patches.apply()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@dataclass
class Stack:
    settings: Settings
    clients: Clients
    resources: Resources
    jobs: JobsTable
    blobs: Blobs
    queue: Queue
    dlq: Queue
    service: JobService

    def upload(self, path: Path | str, filename: str | None = None, content_type: str = "audio/wav") -> str:
        """Create a job through the API service and PUT the file to its pre-signed URL; the job id."""
        path = Path(path)
        created = self.service.create_upload({"filename": filename or path.name, "contentType": content_type})
        response = requests.put(created["uploadUrl"], data=path.read_bytes(), headers=created["uploadHeaders"],
                                timeout=30)
        assert response.status_code == 200, response.text
        return created["jobId"]

    def receive_all(self, expected: int, timeout_s: float = 10.0) -> list[Message]:
        """Receive until `expected` messages that are S3 ObjectCreated events arrived (test events dropped)."""
        got: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while len(got) < expected and time.monotonic() < deadline:
            for message in self.queue.receive(10, 1):
                if '"s3:TestEvent"' in message.body:
                    self.queue.delete([message])
                else:
                    got.append(message)
        return got


@pytest.fixture
def queue_config() -> QueueConfig:
    return QueueConfig(visibility_timeout_s=30, max_receive_count=2, wait_time_s=0, max_concurrency=1)


@pytest.fixture
def stack(moto_endpoint, unique, queue_config) -> Stack:
    settings = Settings.from_env(
        {}, endpoint_url=moto_endpoint, bucket=f"wq-{unique}", table=f"wq-jobs-{unique}",
        queue_name=f"wq-q-{unique}", dlq_name=f"wq-dlq-{unique}", queue=queue_config,
    )
    clients = Clients(settings)
    resources = provision(clients, settings)
    jobs = JobsTable(clients, settings.table)
    blobs = Blobs(clients, settings.bucket)
    return Stack(settings, clients, resources, jobs, blobs, Queue(clients, resources.queue_url),
                 Queue(clients, resources.dlq_url), JobService(settings, jobs, blobs))
