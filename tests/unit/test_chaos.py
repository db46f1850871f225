"""The chaos run's judge: each invariant passes on a clean run and catches its own violation."""

from __future__ import annotations

import pytest

from whisperq.evaluation.chaos import check_after_faults, check_after_replay
from whisperq.faults import FaultSpec, FaultSpecError


def row(job, status="COMPLETED", kind="audio", error=None, history=None):
    return {"jobId": job, "status": status, "kind": kind, "error": error,
            "history": history or ["UPLOADING", "QUEUED", "PROCESSING", status]}


CLEAN = [row("a"), row("b", "FAILED", "corrupt", "b.wav could not be decoded as audio"),
         row("c", "PROCESSING", "poison")]
KEYS = {"transcripts/a/a.txt"}
VERSIONS = {"transcripts/a/a.txt": ["e1", "e1"]}


def failed_checks(verdict):
    return [c.name for c in verdict.checks if not c.ok]


def test_judge_when_every_invariant_holds_then_ok():
    verdict = check_after_faults(CLEAN, {"c"}, VERSIONS, KEYS)
    assert verdict.ok and len(verdict.checks) == 6


@pytest.mark.parametrize(
    ("rows", "dead", "versions", "keys", "broken"),
    [
        (CLEAN, set(), VERSIONS, KEYS, "nothing lost (final, or its message in the DLQ)"),
        ([*CLEAN[:2], row("c", "QUEUED")], {"x"}, VERSIONS, KEYS, "nothing lost (final, or its message in the DLQ)"),
        ([row("a"), row("b", "FAILED", error=" ")], set(), VERSIONS, KEYS, "every FAILED job says why"),
        ([row("a"), row("b", "COMPLETED", "corrupt")], set(), VERSIONS, KEYS | {"transcripts/b/b.txt"},
         "corrupt uploads fail, never complete"),
        ([row("a")], set(), VERSIONS, set(), "every COMPLETED job has its transcript"),
        ([row("a")], set(), {"transcripts/a/a.txt": ["e1", "e2"]}, KEYS,
         "no transcript written twice with different content"),
        ([row("a", history=["UPLOADING", "COMPLETED", "PROCESSING", "COMPLETED"])], set(), VERSIONS, KEYS,
         "no job went backwards"),
        ([row("a", history=["UPLOADING", "QUEUED", "UPLOADING", "COMPLETED"])], set(), VERSIONS, KEYS,
         "no job went backwards"),
    ],
)
def test_judge_when_an_invariant_is_broken_then_that_one_fails(rows, dead, versions, keys, broken):
    assert failed_checks(check_after_faults(rows, dead, versions, keys)) == [broken]


def test_judge_after_replay_when_a_replayed_job_is_not_final_or_the_dlq_not_empty_then_fails():
    verdict = check_after_faults([row("a")], set(), VERSIONS, KEYS)
    check_after_replay(verdict, [row("a"), row("c", "QUEUED", "poison")], {"c"}, dlq_left=1)
    assert failed_checks(verdict) == ["replay brings dead-lettered jobs to a final state",
                                      "in the end every good upload is COMPLETED"]
    fine = check_after_faults([row("a")], set(), VERSIONS, KEYS)
    check_after_replay(fine, [row("a"), row("c", "COMPLETED", "poison")], {"c"}, dlq_left=0)
    assert fine.ok


def test_fault_spec_when_parsed_then_round_trips_and_refuses_nonsense():
    spec = FaultSpec.parse("aws_errors=0.2, crash=0.05,kill_every_s=5,seed=3")
    assert (spec.aws_errors, spec.crash, spec.kill_every_s, spec.seed) == (0.2, 0.05, 5.0, 3)
    assert spec.active and FaultSpec.parse(str(spec)) == spec
    assert not FaultSpec.parse("").active and not FaultSpec.parse("slow=0.5").active  # no slow_s: no delay
    for bad in ("explode=1", "aws_errors=lots", "crash=1.5", "kill_every_s=-1", "aws_errors"):
        with pytest.raises(FaultSpecError):
            FaultSpec.parse(bad)
