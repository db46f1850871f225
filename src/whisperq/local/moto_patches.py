"""Patches of moto's internals: two that make deep SQS queues usable in the local twin, one that
stops every request from searching for its service, and two that make moto as strict as AWS where
the pipeline's guarantees depend on it: DynamoDB's writes atomic, as DynamoDB's are, and SQS's
receipt handles good only until the message is received again.

Stock moto 5.2.5 scans every message of a queue on each call, and for each message it (1) computes
the time by building datetimes (moto.core.utils.unix_time) and (2) checks retention by computing
*all* the queue's attributes, including the approximate counts, each another scan. Receiving from a
queue of n messages therefore costs O(n^2). The patches replace (1) with time.time() (the same UTC
epoch seconds) and (2) with a read of the queue's retention period. Nothing else changes: visibility,
delays, receive counts and the redrive to the dead-letter queue behave as before (the integration and
end-to-end tests run against the patched moto).

Reading a queue's attributes computed all of them (three scans of the messages) three times for
each name asked for; the patch computes them once per call.

Every request also finds its service again: moto lists its package directory (a stat per
service) and tries some hundreds of URL patterns, under one lock, a tenth of the moto process's
CPU under a flood. The answer for a host never changes, so the patch remembers it.

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


def _remembered_backends(original: Any) -> Any:
    known: dict[str | None, Any] = {}

    @functools.wraps(original)
    def get_backend_for_host(self: Any, host: str | None) -> Any:
        if host not in known:
            known[host] = original(self, host)
        return known[host]

    return get_backend_for_host


def _queue_attributes(self: Any, queue_name: str, attribute_names: list[str]) -> dict[str, Any]:
    """moto 5.2.5's SQSBackend.get_queue_attributes, with the queue's attributes computed once."""
    from moto.sqs.exceptions import InvalidAttributeName

    queue = self.get_queue(queue_name)
    if not attribute_names:
        return {}
    valid_names = ["All"] + queue.BASE_ATTRIBUTES + queue.FIFO_ATTRIBUTES + queue.KMS_ATTRIBUTES
    invalid_name = next((name for name in attribute_names if name not in valid_names), None)
    if invalid_name or invalid_name == "":
        raise InvalidAttributeName(invalid_name)
    everything = queue.attributes
    if "All" in attribute_names:
        return everything
    return {name: everything[name] for name in attribute_names if everything.get(name) is not None}


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


# A receipt handle is good until the message is received again. AWS: "if you don't provide the most
# recently received receipt handle for the message, the request will still succeed, but the message
# might not be deleted"; a visibility change with a stale handle fails ("The receipt handle has
# expired"). moto honours every handle a message ever had, so a worker that lost a message to a newer
# receive could delete it under the newer holder. The twin takes AWS's strict reading: a stale delete
# succeeds and deletes nothing, a stale visibility change fails.
def _latest_receipt_delete(original: Any) -> Any:
    @functools.wraps(original)
    def delete_message(self: Any, receipt_handle: str) -> None:
        if any(m.receipt_handle != receipt_handle and m.had_receipt_handle(receipt_handle) for m in self._messages):
            return  # stale: received again since; succeeds, deletes nothing
        original(self, receipt_handle)

    delete_message.whisperq_strict = True  # type: ignore[attr-defined]
    return delete_message


def _latest_receipt_visibility(original: Any) -> Any:
    @functools.wraps(original)
    def change_message_visibility(self: Any, queue_name: str, receipt_handle: str, visibility_timeout: int) -> None:
        from moto.sqs.exceptions import InvalidParameterValue

        queue = self.get_queue(queue_name)
        if any(m.receipt_handle != receipt_handle and m.had_receipt_handle(receipt_handle) for m in queue._messages):
            raise InvalidParameterValue(f"Value {receipt_handle} for parameter ReceiptHandle is invalid. Reason: "
                                        "The receipt handle has expired.")
        original(self, queue_name, receipt_handle, visibility_timeout)

    change_message_visibility.whisperq_strict = True  # type: ignore[attr-defined]
    return change_message_visibility


def make_receipts_strict() -> None:
    from moto.sqs import models

    if not getattr(models.Queue.delete_message, "whisperq_strict", False):
        models.Queue.delete_message = _latest_receipt_delete(models.Queue.delete_message)  # type: ignore[method-assign]
    if not getattr(models.SQSBackend.change_message_visibility, "whisperq_strict", False):
        models.SQSBackend.change_message_visibility = _latest_receipt_visibility(  # type: ignore[method-assign]
            models.SQSBackend.change_message_visibility)


def make_dynamodb_atomic() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    for name in _ATOMIC:
        method = getattr(DynamoDBBackend, name)
        if not getattr(method, "whisperq_atomic", False):
            setattr(DynamoDBBackend, name, _atomic(method))


def apply() -> str:
    """Patch moto in this process; returns what was done, for the log. DynamoDB's atomic writes and
    SQS's strict receipt handles always (matters of correctness); the speed-ups unless
    WHISPERQ_MOTO_PATCHES=0."""
    global _applied
    import moto
    from moto.moto_server import werkzeug_app
    from moto.sqs import models

    make_dynamodb_atomic()
    make_receipts_strict()
    strict = "moto DynamoDB writes made atomic, SQS receipt handles strict"
    if os.environ.get("WHISPERQ_MOTO_PATCHES", "1") == "0":
        return f"{strict}; speed-ups off (WHISPERQ_MOTO_PATCHES=0)"
    if moto.__version__ != PATCHED_VERSION:
        return f"{strict}; moto {moto.__version__} is not {PATCHED_VERSION}: speed-ups not applied"
    if not _applied:
        models.unix_time = _fast_unix_time(models.unix_time)
        models.unix_time_millis = _fast_unix_time_millis(models.unix_time_millis)
        models.SQSBackend.is_message_valid_based_on_retention_period = _retention_check  # type: ignore[method-assign]
        models.SQSBackend.get_queue_attributes = functools.wraps(models.SQSBackend.get_queue_attributes)(  # type: ignore[method-assign]
            _queue_attributes)
        dispatcher = werkzeug_app.DomainDispatcherApplication
        dispatcher.get_backend_for_host = _remembered_backends(dispatcher.get_backend_for_host)  # type: ignore[method-assign]
        _applied = True
    return f"{strict}; moto {PATCHED_VERSION} patches applied (cheap clock, direct retention check, queue " \
           "attributes computed once, services remembered by host)"


def is_applied() -> bool:
    return _applied
