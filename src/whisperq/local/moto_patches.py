"""Two patches of moto's SQS internals that make deep queues usable in the local twin, and one that
makes its DynamoDB writes atomic, as DynamoDB's are.

Stock moto 5.2.5 scans every message of a queue on each call, and for each message it (1) computes
the time by building datetimes (moto.core.utils.unix_time) and (2) checks retention by computing
*all* the queue's attributes, including the approximate counts, each another scan. Receiving from a
queue of n messages therefore costs O(n^2). The patches replace (1) with time.time() (the same UTC
epoch seconds) and (2) with a read of the queue's retention period. Nothing else changes: visibility,
delays, receive counts and the redrive to the dead-letter queue behave as before (the integration and
end-to-end tests run against the patched moto).

They apply to moto 5.2.5 only, the version pinned in requirements/constraints.txt; on another version
`apply()` changes nothing and says so. WHISPERQ_MOTO_PATCHES=0 turns them off (to measure the
difference: docs/performance.md)."""

from __future__ import annotations

import functools
import os
import threading
import time
from typing import Any

PATCHED_VERSION = "5.2.5"
_applied = False


def _fast_unix_time(original: Any) -> Any:
    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else original(dt)

    return unix_time


def _fast_unix_time_millis(original: Any) -> Any:
    def unix_time_millis(dt: Any = None) -> float:
        return time.time() * 1000.0 if dt is None else original(dt)

    return unix_time_millis


def _retention_check(self: Any, queue_name: str, message: Any) -> bool:
    queue = self.get_queue(queue_name)
    retain_until = int(queue.message_retention_period) + message.sent_timestamp / 1000
    return retain_until > time.time()


# DynamoDB's writes are atomic: a conditional write checks and writes as one step, which the
# pipeline's leases rely on. moto's server handles requests in threads and checks, then writes, in
# Python: two conditional updates of one item could both pass. One lock per process makes each
# write (and each read, which must not see a write half done) one step, as in DynamoDB.
_DYNAMODB_LOCK = threading.RLock()
_ATOMIC = ("put_item", "update_item", "delete_item", "transact_write_items", "get_item")


def _atomic(method: Any) -> Any:
    @functools.wraps(method)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _DYNAMODB_LOCK:
            return method(*args, **kwargs)

    locked.whisperq_atomic = True  # type: ignore[attr-defined]
    return locked


def make_dynamodb_atomic() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    for name in _ATOMIC:
        method = getattr(DynamoDBBackend, name)
        if not getattr(method, "whisperq_atomic", False):
            setattr(DynamoDBBackend, name, _atomic(method))


def apply() -> str:
    """Patch moto in this process; returns what was done, for the log. DynamoDB's atomic writes
    always (a matter of correctness); the SQS speed-ups unless WHISPERQ_MOTO_PATCHES=0."""
    global _applied
    import moto
    from moto.sqs import models

    make_dynamodb_atomic()
    if os.environ.get("WHISPERQ_MOTO_PATCHES", "1") == "0":
        return "moto DynamoDB writes made atomic; SQS patches off (WHISPERQ_MOTO_PATCHES=0)"
    if moto.__version__ != PATCHED_VERSION:
        return f"moto {moto.__version__} is not {PATCHED_VERSION}: SQS patches not applied"
    if not _applied:
        models.unix_time = _fast_unix_time(models.unix_time)
        models.unix_time_millis = _fast_unix_time_millis(models.unix_time_millis)
        models.SQSBackend.is_message_valid_based_on_retention_period = _retention_check
        _applied = True
    return f"moto DynamoDB writes made atomic; moto {PATCHED_VERSION} SQS patches applied (cheap clock, " \
           "direct retention check)"


def is_applied() -> bool:
    return _applied
