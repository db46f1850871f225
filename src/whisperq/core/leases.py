"""Leases: who may work on a piece of work (a whole job, one chunk of a fanned-out job, or its merge),
until when, and what a delivery of its message does while someone holds it.

Every delivery is at least once, so every piece of work is done under a lease taken with one
conditional write. A delivery that finds the lease held by a live holder who came with another
message is a duplicate: the holder's own message carries the work (and comes back if the holder
dies), so the copy is acknowledged. A delivery that finds its *own* message's holder still live is
that holder's message back early (the holder died, or could not extend the message's visibility):
acknowledging it could lose the work, so it is handed back until the lease runs out.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Lease:
    """A holder's claim on a piece of work: its id, until when (epoch seconds), the message it came with."""

    id: str
    expires_at: float
    message_id: str | None = None

    @classmethod
    def new(cls, message_id: str | None, lease_s: float, now: float) -> Lease:
        """A fresh lease for the holder of `message_id`, running `lease_s` seconds from `now`."""
        return cls(str(uuid.uuid4()), now + lease_s, message_id)

    def left_s(self, now: float) -> float:
        """Seconds until the lease runs out (0 or less: it has)."""
        return self.expires_at - now

    def renewed(self, lease_s: float, now: float) -> Lease:
        """The same lease, running `lease_s` seconds from `now`."""
        return replace(self, expires_at=now + lease_s)


class Verdict(enum.StrEnum):
    TAKE = "take"  # nobody holds the work, or the holder's lease ran out: take it over
    DUPLICATE = "duplicate"  # a live holder came with another message: acknowledge this copy
    HAND_BACK = "hand-back"  # our own message is back while its holder's lease lives: return it later


def on_delivery(holder: Lease | None, message_id: str, now: float) -> Verdict:
    """What a delivery of `message_id` does about work whose lease is `holder` (None: not held)."""
    if holder is None or holder.left_s(now) <= 0:
        return Verdict.TAKE
    if holder.message_id not in (None, message_id):
        return Verdict.DUPLICATE
    return Verdict.HAND_BACK


# After a stranded last call's invocation ended and its message left the worker's hands, this much more
# before it is called stranded: clocks of different machines, and a clearing write on its way.
STRANDED_GRACE_S = 5.0


@dataclass(frozen=True)
class LastCall:
    """A message on the last delivery its queue allows, noted on the work it carries (the job, or the
    chunk) before any of the work starts, and cleared when its handling ends without an error.

    A failing last attempt ends its job FAILED itself. A last call left behind means that its worker
    died with it (a crash, out of memory, the function's timeout): its message goes to the dead-letter
    queue, and nobody else would ever end the job. The reaper does, with what the note says."""

    message_id: str
    receive_count: int
    at: float  # epoch seconds: when the worker began to handle it
    timed_out: bool = False  # its worker saw the deadline come with the work unfinished

    @classmethod
    def of(cls, message_id: str, receive_count: int, max_receive_count: int, now: float) -> LastCall | None:
        """The note of a delivery, if it is the last its queue allows (None otherwise)."""
        return cls(message_id, receive_count, now) if receive_count >= max_receive_count else None

    def stranded_at(self, holder: Lease | None, visibility_timeout_s: float) -> float:
        """When it can no longer end by itself (epoch seconds): its message is out of the worker's hands,
        visible again (so dead-lettered on its next receive), and the lease of its work has run out (a
        live worker's heartbeat keeps both from running out)."""
        ends = [self.at + visibility_timeout_s]
        if holder is not None and holder.message_id == self.message_id:
            ends.append(holder.expires_at)  # the heartbeat kept the message hidden as long as the lease
        return max(ends) + STRANDED_GRACE_S

    def why_stopped(self, what: str, max_receive_count: int) -> str:
        """What happened, for a person: which attempt, and how it ended."""
        attempt = f"its last attempt (delivery {self.receive_count} of {max_receive_count})"
        if self.timed_out:
            return f"{what} ran out of time on {attempt}: the function's timeout ended it before it finished"
        return (f"{what} stopped on {attempt} without recording an error: its worker crashed or ran out of "
                "memory (the function's log says which)")
