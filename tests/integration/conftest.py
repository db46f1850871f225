"""Integration fixtures: a real moto server over HTTP on 127.0.0.1, fresh resources per test."""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jsonschema
import pytest
import requests
from aws_lambda_powertools import Logger
from moto.server import ThreadedMotoServer

from tests.conftest import load_event
from whisperq.api_handler import handler as api
from whisperq.api_handler.service import JobService
from whisperq.aws.blobs import Blobs
from whisperq.aws.clients import Clients
from whisperq.aws.jobs_table import JobsTable
from whisperq.aws.provision import Resources, provision
from whisperq.aws.queues import Message, Queue
from whisperq.config import Settings
from whisperq.local import moto_patches
from whisperq.local.esm import Poller, lambda_record
from whisperq.local.lambda_context import LocalLambdaContext
from whisperq.queue_config import QueueConfig
from whisperq.transcriber import handler as function
from whisperq.transcriber.engines.synthetic import SyntheticEngine


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
        size = path.stat().st_size
        created = self.service.create_upload({"filename": filename or path.name, "contentType": content_type,
                                              "contentLength": max(1, size)})
        headers = dict(created["uploadHeaders"])
        if size == 0:  # an empty object, as other ways in can make one: the worker's case, not the URL's
            headers.pop("Content-Length")
        response = requests.put(created["uploadUrl"], data=path.read_bytes(), headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        return created["jobId"]

    def busy(self) -> None:
        """Messages waiting for every worker but the one handling a message now (S3 test events, which
        workers acknowledge and ignore): nothing is fanned out that need not be."""
        test_event = '{"Service": "Amazon S3", "Event": "s3:TestEvent"}'
        self.queue.send_batch([test_event] * (self.settings.queue.max_concurrency - 1))

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
        chunks_table=f"wq-chunks-{unique}",
        queue_name=f"wq-q-{unique}", dlq_name=f"wq-dlq-{unique}", callbacks_queue_name=f"wq-cb-{unique}",
        queue=queue_config,
    )
    clients = Clients(settings)
    resources = provision(clients, settings)
    jobs = JobsTable(clients, settings.table)
    blobs = Blobs(clients, settings.bucket)
    return Stack(settings, clients, resources, jobs, blobs, Queue(clients, resources.queue_url),
                 Queue(clients, resources.dlq_url), JobService(settings, jobs, blobs))


# --- the API handler and a transcriber on the same stack (jobs API, security tests) -----------
DOC = api.contract()
ALICE, BOB = "key-alice", "key-bob"


def check_schema(payload, schema: dict) -> None:
    jsonschema.validate(payload, {**schema, "components": DOC["components"]},
                        cls=jsonschema.Draft202012Validator)


def response_schema(path: str, method: str, status: int) -> dict:
    operation = DOC["paths"][path][method.lower()]
    response = operation["responses"][str(status)]
    return response["content"]["application/json"]["schema"]


@pytest.fixture
def settings(stack):
    return replace(stack.settings, allow_private_callbacks=True, callback_secret="s3cret")


@pytest.fixture
def call(stack, settings):
    service = JobService(settings, stack.jobs, stack.blobs, allow_private_callbacks=True)
    api.reset(service)
    base = load_event("api_post_upload.json")

    def invoke(method, path, body=None, key=ALICE, query=None, template=None, raw=None, headers=None):
        event = json.loads(json.dumps(base))
        event.update(httpMethod=method, path=path, resource=path, queryStringParameters=query)
        for name, value in (headers or {}).items():
            event["headers"][name] = value
            event["multiValueHeaders"][name] = [value]
        event["body"] = raw if raw is not None else (json.dumps(body) if body is not None else None)
        event["requestContext"]["identity"]["apiKeyId"] = key
        response = api.handler(event, LocalLambdaContext("whisperq-api"))
        payload = json.loads(response["body"])
        headers = {k: v[-1] for k, v in (response.get("multiValueHeaders") or {}).items()}
        template_path = template or path
        if template_path in DOC["paths"]:
            check_schema(payload, response_schema(template_path, method, response["statusCode"]))
        return response["statusCode"], payload, headers

    yield invoke
    api.reset()


@pytest.fixture
def transcriber(stack, settings):
    runtime = function.build_runtime(settings, stack.clients, SyntheticEngine(0.0), Logger(service="t"),
                                     sleep=lambda s: None)
    function.reset(runtime)

    def run():
        messages = stack.receive_all(1)
        records = [lambda_record(m, stack.resources.queue_arn, "us-east-1") for m in messages]
        return function.handler({"Records": records}, LocalLambdaContext("whisperq-transcriber"))

    yield run
    function.reset()


def delivery_of(stack: Stack, message: Message, receive_count: int | None = None):
    """The Delivery the transcriber's handler makes of one real message (optionally on a later receive)."""
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    record = lambda_record(message, stack.resources.queue_arn, "us-east-1")
    if receive_count is not None:
        record["attributes"]["ApproximateReceiveCount"] = str(receive_count)
    return function._delivery(SQSRecord(record))


def post_form(created: dict, data: bytes) -> requests.Response:
    upload = created["upload"]
    return requests.post(upload["url"], data=upload["fields"], files={upload["fileField"]: ("a.wav", data)},
                         timeout=30)


# --- a web host on 127.0.0.1 whose answer a test writes (callbacks' receivers, audio by URL) ---------
class Server:
    """A receiver on 127.0.0.1 whose answer a test writes (`answer(handler)`)."""

    def __init__(self, answer):
        self.hits = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                server.hits += 1
                answer(self)

            do_GET = do_POST

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.port = self.httpd.server_address[1]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(request):
    made = []

    def make(answer):
        made.append(Server(answer))
        return made[-1]

    yield make
    for each in made:
        each.close()


# --- the real tiny.en behind the event-source-mapping emulator (fan-out, diarization) --------------
@pytest.fixture(scope="module")
def engine():
    """tiny.en on faster-whisper (int8, one thread), loaded once per module."""
    from whisperq.transcriber.engines.faster import FasterWhisperEngine

    return FasterWhisperEngine("tiny.en", "int8", 1)


class Worker:
    """The transcriber handler behind the event-source-mapping emulator's own invoke, on the test stack."""

    def __init__(self, stack, engine, wrap_engine=None):
        self.stack = stack
        self.runtime = function.build_runtime(stack.settings, stack.clients, wrap_engine(engine) if wrap_engine
                                              else engine, Logger(service="t"), sleep=lambda s: None)
        function.reset(self.runtime)
        self.poller = Poller(stack.queue, stack.resources.queue_arn, "us-east-1", 1, 0, 0, function.handler,
                             "whisperq-transcriber", 900, sys.stderr)

    def invoke(self, messages) -> tuple[int, int]:
        return self.poller.invoke(messages)

    def drain(self, limit: int = 60) -> int:
        """Handle messages one at a time until the queue is empty; how many were handled."""
        handled = 0
        while handled < limit:
            batch = self.stack.queue.receive(1, 0)
            if not batch:
                return handled
            self.invoke(batch)
            handled += 1
        return handled


@pytest.fixture
def worker(stack, engine):
    yield Worker(stack, engine)
    function.reset()
