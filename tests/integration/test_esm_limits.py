"""The event-source-mapping emulator holds the function to Lambda's time limit: an invocation that runs
past the function timeout is ended with the worker (nothing of its batch deleted, so its messages come
back after their visibility timeout), and every invocation leaves Lambda's REPORT line."""

from __future__ import annotations

import multiprocessing
import re
import sys
import time

from whisperq.aws.clients import Clients
from whisperq.aws.queues import Queue
from whisperq.config import Settings
from whisperq.local.esm import TIMED_OUT_EXIT, Poller


def _sleepy_handler(event, context):
    seconds = float(event["Records"][0]["body"])
    time.sleep(seconds)
    return {"batchItemFailures": []}


def _worker(endpoint: str, queue_url: str, timeout_s: int, log_path: str) -> None:
    """One emulated worker (a process of its own, as the twin's are) that handles one message."""
    sys.stderr = open(log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - the process's log
    queue = Queue(Clients(Settings.from_env({}, endpoint_url=endpoint)), queue_url)
    poller = Poller(queue, "arn:aws:sqs:us-east-1:123456789012:q", "us-east-1", 1, 0, 1, _sleepy_handler,
                    "whisperq-transcriber", timeout_s, sys.stderr)
    batch = poller.gather()
    poller.invoke(batch)


def send(stack, body: str) -> None:
    stack.clients.sqs.purge_queue(QueueUrl=stack.resources.queue_url)  # S3's test event goes
    stack.queue.send(body)


def run_worker(stack, timeout_s: int, log_path) -> int:
    process = multiprocessing.get_context("spawn").Process(
        target=_worker, args=(stack.settings.endpoint_url, stack.resources.queue_url, timeout_s, str(log_path)))
    process.start()
    process.join(60)
    return process.exitcode


def test_invocation_when_it_runs_past_the_function_timeout_then_ended_and_its_message_returns(stack, tmp_path):
    log = tmp_path / "twin.log"
    send(stack, "30")  # the handler would take 30 s; the function may take 2
    started = time.monotonic()
    assert run_worker(stack, 2, log) == TIMED_OUT_EXIT
    assert time.monotonic() - started < 20
    text = log.read_text()
    assert re.search(r"Task timed out after 2\.00 seconds", text) and "REPORT" not in text
    # Nothing was deleted: the message is in flight until its visibility timeout (30 s here), then back.
    depth = stack.queue.depth()
    assert depth["visible"] + depth["in_flight"] == 1


def test_invocation_when_it_finishes_in_time_then_the_report_line_gives_its_duration(stack, tmp_path):
    log = tmp_path / "twin.log"
    send(stack, "0.3")
    assert run_worker(stack, 5, log) == 0
    [report] = [line for line in log.read_text().splitlines() if line.startswith("REPORT")]
    duration_ms = float(re.search(r"Duration: ([0-9.]+) ms", report).group(1))
    assert 300 <= duration_ms < 5000 and "Max Memory Used:" in report
    assert stack.queue.depth()["visible"] == stack.queue.depth()["in_flight"] == 0  # handled: deleted
