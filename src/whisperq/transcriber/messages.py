"""What the queue and the invocation tell us about each delivery (the messages themselves: S3 events in
aws/s3_events.py, chunk and fetch messages in core)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from whisperq.core.jobs import iso


@dataclass(frozen=True)
class Delivery:
    """What the queue tells us about one message: enough to reason about retries."""

    message_id: str
    receive_count: int
    sent_timestamp_ms: int | None
    receipt_handle: str | None = None
    queue_arn: str | None = None
    # When the invocation that holds it must end (time.monotonic() seconds); None: a fresh invocation's.
    deadline: float | None = None

    def time_left_s(self, function_timeout_s: float) -> float:
        """Seconds the invocation has left for this message."""
        if self.deadline is None:
            return float(function_timeout_s)
        return max(0.0, self.deadline - time.monotonic())


def iso_from_ms(epoch_ms: int) -> str:
    return iso(datetime.fromtimestamp(epoch_ms / 1000, tz=UTC))
