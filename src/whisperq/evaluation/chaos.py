"""The chaos run's verdict: after a load test under faults, the invariants a queue-driven service
must keep, each checked against what the pipeline actually holds (the jobs table, the DLQ, every
version of every transcript object), then the faults switched off and the dead letters replayed.

The invariants:
1. nothing lost: every job is final (COMPLETED, FAILED with a reason, CANCELLED) or its message
   is in the dead-letter queue; none is left in UPLOADING, QUEUED or PROCESSING otherwise;
2. failures have reasons: every FAILED job says why;
3. bad input fails, good input does not: corrupt uploads end FAILED, never COMPLETED;
4. completed means written: every COMPLETED job's transcripts exist;
5. written once: no transcript object was ever written with two different contents
   (the bucket is versioned for the run, so every write is kept and compared);
6. never backwards: no job was seen leaving a final state, or going back to UPLOADING;
7. replay recovers: with the faults off, `dlq replay --all` brings every dead-lettered job to a
   final state and empties the DLQ; and then every job that was not corrupt is COMPLETED;
8. each chunk once: a COMPLETED fanned-out job counted every chunk exactly once (its counter equals
   its chunk count and its done marks).
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from whisperq.aws.blobs import Blobs
from whisperq.core.jobs import JobStatus
from whisperq.core.keys import transcript_key

FINAL = {s.value for s in JobStatus if s.is_final}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"invariant": self.name, "ok": self.ok, "detail": self.detail}


@dataclass
class Verdict:
    checks: list[Check] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def add(self, name: str, failures: list[str], detail_ok: str) -> None:
        shown = "; ".join(failures[:5]) + (f"; and {len(failures) - 5} more" if len(failures) > 5 else "")
        self.checks.append(Check(name, not failures, shown if failures else detail_ok))

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [c.to_dict() for c in self.checks], "facts": self.facts}


def transcript_versions(blobs: Blobs, job_ids: set[str]) -> tuple[dict[str, list[str]], set[str]]:
    """The ETag of every version (every write) of every transcript of the given jobs, by key; and
    the keys whose current version is an object (not deleted)."""
    etags: dict[str, list[str]] = defaultdict(list)
    current: set[str] = set()
    for key, etag, latest in blobs.versions_under("transcripts/"):
        job_id = key.split("/")[1] if key.count("/") >= 2 else ""
        if job_id in job_ids:
            etags[key].append(etag)
            if latest:
                current.add(key)
    return etags, current


def check_after_faults(rows: list[dict[str, Any]], dead_job_ids: set[str], versions: dict[str, list[str]],
                       existing_keys: set[str]) -> Verdict:
    """Invariants 1 to 6 on the state the faults left."""
    verdict = Verdict()
    lost = [f"{r['jobId']} {r['status']}" for r in rows if r["status"] not in FINAL and r["jobId"] not in dead_job_ids]
    verdict.add("nothing lost (final, or its message in the DLQ)", lost,
                f"{sum(r['status'] in FINAL for r in rows)} final, {len(dead_job_ids)} in the DLQ, of {len(rows)}")
    unexplained = [r["jobId"] for r in rows if r["status"] == "FAILED" and not (r.get("error") or "").strip()]
    verdict.add("every FAILED job says why", unexplained,
                f"{sum(r['status'] == 'FAILED' for r in rows)} FAILED, each with a reason")
    corrupt_done = [r["jobId"] for r in rows if r.get("kind") == "corrupt" and r["status"] == "COMPLETED"]
    corrupt = [r for r in rows if r.get("kind") == "corrupt"]
    verdict.add("corrupt uploads fail, never complete", corrupt_done,
                f"{sum(r['status'] == 'FAILED' for r in corrupt)} of {len(corrupt)} corrupt uploads FAILED")
    missing = [r["jobId"] for r in rows if r["status"] == "COMPLETED"
               and transcript_key(r["jobId"], "txt") not in existing_keys]
    verdict.add("every COMPLETED job has its transcript", missing,
                f"{sum(r['status'] == 'COMPLETED' for r in rows)} COMPLETED, all transcripts present")
    rewritten = [f"{key} ({len(set(tags))} different contents)" for key, tags in versions.items()
                 if len(set(tags)) > 1]
    writes = sum(len(tags) for tags in versions.values())
    verdict.add("no transcript written twice with different content", rewritten,
                f"{len(versions)} transcript objects, {writes} writes, {writes - len(versions)} rewrites "
                "with identical content")
    backwards = [f"{r['jobId']}: {' > '.join(r.get('history') or [])}" for r in rows
                 if _went_backwards(r.get("history"))]
    verdict.add("no job went backwards", backwards, "every status sequence moved forward")
    return verdict


def _went_backwards(history: list[str] | None) -> bool:
    seen_final = None
    for index, status in enumerate(history or []):
        if seen_final is not None and status != seen_final:
            return True
        if status in FINAL:
            seen_final = status
        if status == JobStatus.UPLOADING.value and index > 0:
            return True
    return False


def check_after_replay(verdict: Verdict, rows: list[dict[str, Any]], replayed: set[str], dlq_left: int) -> None:
    """Invariant 7, on the state after the faults were switched off and the DLQ replayed."""
    by_id = {r["jobId"]: r for r in rows}
    unfinished = [f"{job} {by_id[job]['status']}" for job in sorted(replayed) if by_id[job]["status"] not in FINAL]
    verdict.add("replay brings dead-lettered jobs to a final state", unfinished + ([f"{dlq_left} left in the DLQ"]
                                                                                  if dlq_left else []),
                f"{len(replayed)} replayed, all final, DLQ empty")
    not_done = [f"{r['jobId']} ({r.get('kind')}) {r['status']}: {(r.get('error') or '')[:80]}"
                for r in rows if r.get("kind") != "corrupt" and r["status"] != "COMPLETED"]
    verdict.add("in the end every good upload is COMPLETED", not_done,
                f"{sum(r['status'] == 'COMPLETED' for r in rows)} COMPLETED")
    fanned = [r for r in rows if r.get("chunks")]
    miscounted = [f"{r['jobId']}: {r.get('chunksDone')} counted, {r.get('chunksMarked')} marked of {r['chunks']}"
                  for r in fanned if r["status"] == "COMPLETED"
                  and not r["chunks"] == r.get("chunksDone") == r.get("chunksMarked")]
    verdict.add("each chunk of a fanned-out job counted once", miscounted,
                f"{len(fanned)} fanned-out job(s), {sum(r['chunks'] for r in fanned)} chunks, each counted once")


def wait_until(predicate: Any, timeout_s: float, poll_s: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll_s)
    return predicate()


def run(twin: Any, test: Any, clients: Any, log: Any, replay_timeout_s: float = 300.0) -> dict[str, Any]:
    """The whole chaos run on a started twin whose workers run with faults: the load test, the
    checks, the faults switched off (a redeployment of the workers), the replay, the last checks.
    Returns the run's summary with the verdict under "chaos" (also written to summary.json)."""
    from whisperq import constants, faults
    from whisperq.aws.chunks import ChunksTable
    from whisperq.aws.dlq import DeadLetterQueue
    from whisperq.aws.queues import Queue
    from whisperq.evaluation.loadtest import job_row

    test.blobs.keep_versions()  # every write of every object, so that invariant 5 can compare them
    summary = test.run()
    # A job can end FAILED while its message still waits out a visibility timeout before SQS moves
    # it to the DLQ: let the queue settle (every message deleted or dead-lettered) before judging.
    settle_s = 2 * twin.settings.queue.visibility_timeout_s + 30
    if not wait_until(test.queue_idle, settle_s):
        log(f"the queue did not settle within {settle_s} s")
    rows = [job_row(r) for r in test.records]
    job_ids = {r["jobId"] for r in rows}
    dlq = DeadLetterQueue(clients, Queue(clients, twin.resources.dlq_url), Queue(clients, twin.resources.queue_url),
                          test.jobs)
    dead = {letter.job_id for letter in dlq.peek(limit=10_000) if letter.job_id}
    versions, existing = transcript_versions(test.blobs, job_ids)
    verdict = check_after_faults(rows, dead, versions, existing)
    verdict.facts = {
        "jobs": len(rows), "kinds": {k: sum(r["kind"] == k for r in rows) for k in ("audio", "poison", "corrupt")},
        "afterFaults": {s.value: sum(r["status"] == s.value for r in rows) for s in JobStatus},
        "deadLettered": len(dead), "workersKilledByTheTwin": twin.workers_killed,
        "workersReplaced": twin.workers_replaced, "retries": summary["retries"], "attempts": summary["attempts"],
        "wallS": summary["wallS"],
    }
    log(f"faults phase over: {len(dead)} job(s) in the DLQ; switching the faults off and replaying")
    twin.restart_workers({faults.ENV: None, constants.FAULT_POISON_KEY: None})
    report = dlq.replay()
    replayed = set(report.jobs_reset) | dead
    unfinished = {r.job_id for r in test.records if r.status not in FINAL}
    test.wait_for(replayed | unfinished, time.time() + replay_timeout_s)
    wait_until(test.queue_idle, settle_s)
    rows = [job_row(r) for r in test.records]
    chunks = ChunksTable(clients, twin.settings.chunks_table, test.jobs, 86400)
    for row in rows:  # a fanned-out job's chunks marked done (each mark set once, by the counting transaction)
        if row.get("chunks"):
            row["chunksMarked"] = sum(1 for chunk in chunks.all(row["jobId"]) if chunk.done_by)
    check_after_replay(verdict, rows, replayed, dlq.depth())
    verdict.facts["replay"] = {"method": report.method, "moved": len(report.moved), "jobsReset": len(report.jobs_reset)}
    verdict.facts["final"] = {s.value: sum(r["status"] == s.value for r in rows) for s in JobStatus}
    summary = {**summary, "chaos": verdict.to_dict()}
    test.write(summary)
    return summary
