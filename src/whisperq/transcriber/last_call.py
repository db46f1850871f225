"""A message on the last delivery its queue allows: noted on its work before the work starts, marked
timed out just before the invocation's deadline, cleared when its handling ends without an error.

If the worker dies with it (a crash, out of memory, the function's timeout), nothing of ours runs
again for that message: SQS dead-letters it on its next receive. The note it left is how the reaper
(transcriber/reaper.py) knows, and why: the job then ends FAILED with that reason instead of staying
PROCESSING for ever."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

from whisperq.core.errors import WhisperqError
from whisperq.core.leases import LastCall
from whisperq.transcriber.context import WorkerContext
from whisperq.transcriber.messages import Delivery


def timeout_margin_s(function_timeout_s: float) -> float:
    """How long before the deadline the timed-out mark is written: enough for one write, on a busy machine."""
    return max(0.2, min(2.0, function_timeout_s / 10))


@contextlib.contextmanager
def last_call(context: WorkerContext, delivery: Delivery, job_id: str, chunk: int | None = None) -> Iterator[None]:
    """Around the handling of one message's work (the job's, or chunk `chunk`'s): a no-op unless the
    delivery is the last the queue allows."""
    queue = context.settings.queue
    if delivery.receive_count < queue.max_receive_count:
        yield
        return
    left_s = delivery.time_left_s(queue.function_timeout_s)
    call = LastCall(delivery.message_id, delivery.receive_count, time.time())
    noted = _best_effort(context, "note", lambda: context.last_calls.note(job_id, chunk, call))
    timer = None
    if noted:
        timer = threading.Timer(max(0.0, left_s - timeout_margin_s(queue.function_timeout_s)), _best_effort,
                                (context, "mark timed out",
                                 lambda: context.last_calls.timed_out(job_id, chunk, delivery.message_id)))
        timer.daemon = True
        timer.start()
    try:
        yield
    finally:
        if timer is not None:
            timer.cancel()
    # Not after an error: the last attempt ended the job itself, or the message went back as it was
    # (handed back to a live holder); either way the note is left for the reaper to judge.
    if noted:
        _best_effort(context, "clear", lambda: context.last_calls.clear(job_id, chunk, delivery.message_id))


def note_ahead(context: WorkerContext, delivery: Delivery, job_id: str, chunk: int | None) -> None:
    """Note a last delivery that waits behind others in its batch (the handling notes it again, and clears it)."""
    call = LastCall(delivery.message_id, delivery.receive_count, time.time())
    _best_effort(context, "note", lambda: context.last_calls.note(job_id, chunk, call))


def _best_effort(context: WorkerContext, what: str, write: object) -> bool:
    try:
        return bool(write())  # type: ignore[operator]
    except WhisperqError as exc:
        context.log.warning(f"could not {what} the last call", extra={"error": str(exc)})
        return False
