"""What a delivery does about work someone may hold: take it, acknowledge a duplicate, or hand it back."""

import pytest

from whisperq.core.leases import Lease, Verdict, on_delivery

NOW = 1_000.0


@pytest.mark.parametrize(
    ("holder", "verdict"),
    [
        (None, Verdict.TAKE),  # nobody holds it
        (Lease("old", NOW - 1, "our-message"), Verdict.TAKE),  # the holder's lease ran out
        (Lease("old", NOW, "other-message"), Verdict.TAKE),  # ... exactly now
        (Lease("live", NOW + 30, "other-message"), Verdict.DUPLICATE),  # a live holder came with another copy
        (Lease("live", NOW + 30, "our-message"), Verdict.HAND_BACK),  # our own message back early: holder died?
        (Lease("live", NOW + 30, None), Verdict.HAND_BACK),  # a holder that named no message: never acknowledged
    ],
)
def test_on_delivery_when_the_holder_is_as_given_then_the_verdict_follows(holder, verdict):
    assert on_delivery(holder, "our-message", NOW) is verdict


def test_lease_when_new_or_renewed_then_runs_from_now_and_keeps_its_id():
    lease = Lease.new("m", 30, NOW)
    assert lease.expires_at == NOW + 30 and lease.message_id == "m" and len(lease.id) == 36
    renewed = lease.renewed(30, NOW + 10)
    assert renewed.id == lease.id and renewed.left_s(NOW + 10) == 30
    assert Lease.new("m", 30, NOW).id != lease.id
