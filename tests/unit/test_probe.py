"""The probe's figures: per route, requests, failures and latency percentiles."""

from whisperq.evaluation.probe import summary


def test_probe_summary_when_rows_then_percentiles_per_route_and_failures_counted_apart():
    rows = [{"t": i, "route": "GET /jobs/{id}", "ms": float(i + 1), "ok": True} for i in range(200)]
    rows += [{"t": 0, "route": "POST /jobs", "ms": 30.0, "ok": True},
             {"t": 1, "route": "POST /jobs", "ms": 5000.0, "ok": False, "error": "ServiceError: 429"}]
    figures = summary(rows)
    assert set(figures) == {"GET /jobs/{id}", "POST /jobs"}  # no DELETE was timed
    get = figures["GET /jobs/{id}"]
    assert get == {"requests": 200, "failed": 0, "p50Ms": 101.0, "p90Ms": 180.0, "p99Ms": 198.0, "maxMs": 200.0}
    # A failed request counts, but its time is not a latency of an answer.
    assert figures["POST /jobs"] == {"requests": 2, "failed": 1, "p50Ms": 30.0, "p90Ms": 30.0, "p99Ms": 30.0,
                                     "maxMs": 30.0}
