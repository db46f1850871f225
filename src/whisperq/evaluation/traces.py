"""Reading a run's traces back through the X-Ray API (AWS's, or the twin's moto server's, where the
twin's collector forwards them) and turning them into per-job stage durations for the report.

What a job's trace holds, as Lambda and the functions write it:
- the transcriber function's segment (origin AWS::Lambda::Function), with an "Initialization"
  subsegment on a cold start (the model load happens there);
- the stage subsegments "download", "decode", "transcribe", "upload", "status-update", each annotated
  with jobId;
- the API function's "api" subsegments, annotated with jobId when they create a job.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

from whisperq.aws.traces import Traces

# The stages the report shows from traces, in pipeline order; "modelLoad" is the cold start's
# Initialization, shared by the jobs of the invocation that paid for it.
TRACE_STAGES = ("api", "download", "decode", "modelLoad", "transcribe", "upload", "status-update")
def _walk(document: dict[str, Any], trace_id: str) -> Iterator[dict[str, Any]]:
    """The document and every subsegment in it, flattened, each with its trace id."""
    yield {**document, "trace_id": trace_id}
    for child in document.get("subsegments") or []:
        yield from _walk(child, trace_id)


def stage_rows(documents: Iterable[dict[str, Any]], job_ids: set[str] | None = None) -> list[dict[str, Any]]:
    """One row per traced stage of a job: {jobId, stage, seconds, traceId, start}. A cold start's
    Initialization becomes "modelLoad" for each job its invocation carried."""
    entities: list[dict[str, Any]] = []
    for document in documents:
        entities.extend(_walk(document, document.get("trace_id", "")))
    jobs_by_trace: dict[str, set[str]] = defaultdict(set)
    rows = []
    for entity in entities:
        job_id = (entity.get("annotations") or {}).get("jobId")
        if not job_id or (job_ids is not None and job_id not in job_ids):
            continue
        jobs_by_trace[entity["trace_id"]].add(job_id)
        if entity.get("name") in TRACE_STAGES and entity.get("end_time") is not None:
            rows.append({"jobId": job_id, "stage": entity["name"], "traceId": entity["trace_id"],
                         "start": entity["start_time"], "seconds": round(entity["end_time"] - entity["start_time"], 4)})
    for entity in entities:
        if entity.get("name") == "Initialization" and entity.get("end_time") is not None:
            for job_id in sorted(jobs_by_trace.get(entity["trace_id"], ())):
                rows.append({"jobId": job_id, "stage": "modelLoad", "traceId": entity["trace_id"],
                             "start": entity["start_time"],
                             "seconds": round(entity["end_time"] - entity["start_time"], 4)})
    return rows


def per_job(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Seconds per stage for each job (a stage seen on several attempts is summed)."""
    jobs: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for row in rows:
        jobs[row["jobId"]][row["stage"]] += row["seconds"]
    return {job: dict(stages) for job, stages in jobs.items()}


def stage_means(jobs: dict[str, dict[str, float]], job_ids: Iterable[str] | None = None) -> dict[str, float]:
    """Mean seconds per stage over the given traced jobs (all of `jobs` by default); 0.0 for none."""
    chosen = [jobs[j] for j in (jobs if job_ids is None else job_ids) if j in jobs]
    return {stage: sum(j.get(stage, 0.0) for j in chosen) / len(chosen) if chosen else 0.0 for stage in TRACE_STAGES}


def collect(traces: Traces, start: float, end: float, job_ids: set[str], completed: set[str],
            filter_expression: str | None = None, settle_s: float = 10.0, poll_s: float = 1.0) -> list[dict[str, Any]]:
    """The stage rows of the run's jobs (`job_ids`). Segments reach the API a moment after a job
    ends (UDP, then a daemon that sends in batches), so read until every completed job shows its
    upload stage, or until `settle_s` passes."""
    deadline = time.monotonic() + settle_s
    while True:
        rows = stage_rows(traces.documents(start, end, filter_expression), job_ids)
        uploaded = {row["jobId"] for row in rows if row["stage"] == "upload"}
        if completed <= uploaded or time.monotonic() >= deadline:
            return rows
        time.sleep(poll_s)
