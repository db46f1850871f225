"""Control-plane latency while the load runs: a client that reads a job's status and creates a job
at a steady rate, as a person at the page or a polling script would, and times every answer.

The routes it times are the ones that must stay fast when every worker is busy: `GET /jobs/{id}`
(a status poll) and `POST /jobs` (a new job; the probe cancels each one it makes, with `DELETE
/jobs/{id}`, timed too). Requests are sent on a fixed schedule, not back to back, so a slow
answer shows as a slow answer rather than as fewer requests."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from typing import Any

from whisperq.client import ApiError, Client

ROUTES = ("GET /jobs/{id}", "POST /jobs", "DELETE /jobs/{id}")
PROBE_FILE = "probe-{index}.wav"


class Probe:
    """Times the control plane's answers at `rate_per_s` rounds a second (one GET and one POST
    each, and the DELETE of the POST's job) until stopped. `job_ids` gives the jobs to read (the
    load test's); before there are any, the GET reads the probe's own last job."""

    def __init__(self, client: Client, rate_per_s: float, job_ids: Callable[[], list[str]],
                 log: Callable[[str], None] | None = None):
        if rate_per_s <= 0:
            raise ValueError("the probe's rate must be positive")
        self.client = client
        self.interval_s = 1.0 / rate_per_s
        self.job_ids = job_ids
        self.log = log or (lambda message: None)
        self.rows: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._own: str | None = None

    def __enter__(self) -> Probe:
        self._thread = threading.Thread(target=self._run, name="whisperq-probe", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def _timed(self, route: str, call: Callable[[], Any]) -> Any:
        started = time.time()
        clock = time.perf_counter()
        try:
            result = call()
            error = None
        except ApiError as exc:  # recorded, not raised: an error is a finding of the probe
            result, error = None, f"{type(exc).__name__}: {exc}"
        self.rows.append({"t": started, "route": route, "ms": round((time.perf_counter() - clock) * 1000, 2),
                          "ok": error is None, **({"error": error} if error else {})})
        return result

    def _round(self, index: int) -> None:
        known = self.job_ids()
        target = known[index % len(known)] if known else self._own
        if target:
            self._timed(ROUTES[0], lambda: self.client.get(target))
        created = self._timed(ROUTES[1], lambda: self.client.create_job(PROBE_FILE.format(index=index), "audio/wav"))
        if created is not None:
            self._own = created.job_id
            self._timed(ROUTES[2], lambda: self.client.cancel(created.job_id))

    def _run(self) -> None:
        next_at = time.monotonic()
        for index in itertools.count():
            if self._stop.is_set():
                return
            try:
                self._round(index)
            except Exception as exc:  # noqa: BLE001 - the probe must never stop the load test
                self.log(f"probe round failed: {exc}")
            next_at += self.interval_s
            self._stop.wait(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at, time.monotonic() - self.interval_s)  # behind: no burst to catch up


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per route: how many requests, how many failed, and the latency percentiles in ms."""

    result: dict[str, Any] = {}
    for route in ROUTES:
        answered = [row["ms"] for row in rows if row["route"] == route and row["ok"]]
        failed = sum(1 for row in rows if row["route"] == route and not row["ok"])
        if not answered and not failed:
            continue
        result[route] = {"requests": len(answered) + failed, "failed": failed,
                         **{f"p{q}Ms": percentile(answered, q) for q in (50, 90, 99)},
                         "maxMs": max(answered) if answered else None}
    return result


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile of `values` (nearest rank), rounded to the millisecond; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[index], 3)
