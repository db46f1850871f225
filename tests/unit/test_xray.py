"""The twin's X-Ray pieces: the daemon stand-in, Lambda's side of an invocation, and reading stages
back out of segment documents."""

from __future__ import annotations

import json
import os
import socket
import time

from aws_xray_sdk.core.models.trace_header import TraceHeader

from whisperq.evaluation.traces import per_job, stage_rows
from whisperq.local import xray


def wait_for(predicate, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_collector_when_segments_arrive_over_udp_then_forwarded_in_batches_and_garbage_dropped():
    batches: list[list[str]] = []
    collector = xray.Collector(batches.append, flush_interval_s=0.05).start()
    try:
        host, port = collector.address.split(":")
        assert host == "127.0.0.1"
        xray.send(collector.address, {"name": "f", "id": "a" * 16, "trace_id": xray.new_trace_id(),
                                      "start_time": 1.0, "end_time": 2.0})
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"not a header\nnot json", (host, int(port)))
        assert wait_for(lambda: collector.received == 1 and collector.dropped == 1)
        assert wait_for(lambda: collector.forwarded == 1)
    finally:
        collector.stop()
    (document,) = [json.loads(d) for batch in batches for d in batch]
    assert document["name"] == "f" and document["end_time"] == 2.0


def test_collector_when_the_api_refuses_then_counted_as_dropped_not_raised():
    def refuse(documents):
        raise RuntimeError("throttled")

    collector = xray.Collector(refuse, flush_interval_s=0.05).start()
    try:
        xray.send(collector.address, {"name": "f"})
        assert wait_for(lambda: collector.dropped == 1)
    finally:
        collector.stop()
    assert collector.forwarded == 0


def test_invocation_when_traced_then_header_parses_and_function_segment_carries_the_cold_start():
    received: list[list[str]] = []
    collector = xray.Collector(received.append, flush_interval_s=0.05).start()
    try:
        with xray.Invocation("whisperq-transcriber", collector.address, initialization=(10.0, 12.5)) as call:
            header = TraceHeader.from_header_str(os.environ[xray.TRACE_HEADER_ENV])
            assert (header.root, header.parent, header.sampled) == (call.trace_id, call.segment_id, 1)
            call.error = True
        assert wait_for(lambda: collector.forwarded == 1)
    finally:
        collector.stop()
        os.environ.pop(xray.TRACE_HEADER_ENV, None)
    (segment,) = [json.loads(d) for batch in received for d in batch]
    assert segment["origin"] == "AWS::Lambda::Function" and segment["error"] is True
    assert segment["id"] == call.segment_id and segment["trace_id"] == call.trace_id
    assert segment["start_time"] <= segment["end_time"]
    assert segment["subsegments"][0]["name"] == "Initialization"
    # Trace ids are version 1, the epoch second in hex, then 24 hex digits.
    version, epoch, unique = call.trace_id.split("-")
    assert version == "1" and abs(int(epoch, 16) - time.time()) < 60 and len(unique) == 24


def test_invocation_when_no_daemon_then_no_header_and_nothing_sent():
    os.environ.pop(xray.TRACE_HEADER_ENV, None)
    with xray.Invocation("f", None):
        assert xray.TRACE_HEADER_ENV not in os.environ


def _stage(name, job_id, start, end, trace="1-0-a"):
    return {"name": name, "id": name[:8].ljust(16, "0"), "trace_id": trace, "type": "subsegment",
            "parent_id": "p" * 16, "start_time": start, "end_time": end, "annotations": {"jobId": job_id}}


def test_stage_rows_when_a_cold_invocation_carried_two_jobs_then_both_get_its_model_load():
    function = {"name": "whisperq-transcriber", "id": "p" * 16, "trace_id": "1-0-a", "start_time": 0, "end_time": 9,
                "subsegments": [{"name": "Initialization", "id": "i" * 16, "start_time": -3.0, "end_time": 0.0}]}
    documents = [function, _stage("transcribe", "job-1", 1.0, 3.0), _stage("transcribe", "job-2", 3.0, 4.5),
                 _stage("upload", "job-1", 3.0, 3.25), _stage("transcribe", "other", 0, 1, trace="1-0-b"),
                 {"name": "status-update", "id": "s" * 16, "trace_id": "1-0-a", "start_time": 0, "in_progress": True,
                  "annotations": {"jobId": "job-1"}}]
    rows = stage_rows(documents, {"job-1", "job-2"})
    jobs = per_job(rows)
    assert jobs == {"job-1": {"transcribe": 2.0, "upload": 0.25, "modelLoad": 3.0},
                    "job-2": {"transcribe": 1.5, "modelLoad": 3.0}}


def test_stage_rows_when_a_stage_is_nested_in_a_full_segment_then_found_and_attempts_add_up():
    nested = {"name": "whisperq-transcriber", "id": "q" * 16, "trace_id": "1-0-c", "start_time": 0, "end_time": 5,
              "subsegments": [{"name": "decode", "id": "d" * 16, "start_time": 0, "end_time": 1,
                               "annotations": {"jobId": "job-1"}}]}
    again = _stage("decode", "job-1", 10, 10.5, trace="1-0-d")
    assert per_job(stage_rows([nested, again])) == {"job-1": {"decode": 1.5}}
