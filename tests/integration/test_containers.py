"""The API function's containers in the twin: provisioned ones start with it, and a burst of
requests up to the concurrency finds them warm (no new process)."""

from __future__ import annotations

import os
import threading
import time

from whisperq.local.containers import Containers


def whoami(event, context):
    """A handler for these tests: which container answered, after `sleepS`."""
    time.sleep(event.get("sleepS", 0))
    return {"statusCode": 200, "body": str(os.getpid())}


HANDLER = "tests.integration.test_containers:whoami"


def burst(containers: Containers, requests: int) -> list[int]:
    """`requests` at once, each taking half a second: the pids of the containers that answered."""
    answers: list[str] = []
    threads = [threading.Thread(target=lambda: answers.append(containers({"sleepS": 0.5})["body"]))
               for _ in range(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return [int(answer) for answer in answers]


def test_containers_when_provisioned_then_all_start_with_the_function_and_a_burst_uses_only_them():
    containers = Containers(HANDLER, "whisperq-test", limit=3).warm(3)
    try:
        deadline = time.monotonic() + 60
        while len(containers._all) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        started = {c.process.pid for c in containers._all}
        assert len(started) == 3  # one at once, two more in the background

        # Three at once, each in a container of its own, every one of them provisioned: no cold start.
        assert sorted(burst(containers, 3)) == sorted(started)
        assert len(containers._all) == 3
    finally:
        containers.stop()


def test_containers_when_one_provisioned_then_a_burst_starts_more_up_to_the_limit():
    containers = Containers(HANDLER, "whisperq-test", limit=2).warm(1)
    try:
        assert len(containers._all) == 1
        assert len(set(burst(containers, 2))) == 2 and len(containers._all) == 2  # a cold start for the second
    finally:
        containers.stop()
