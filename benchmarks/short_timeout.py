"""A long file behind a busy queue, on a function that may run 30 s: it must be cut, not started whole.

On Lambda an invocation that runs past the function's timeout loses everything it did, on every
attempt. So a worker never starts a whole-file transcription its invocation may not finish; it fans
the file out instead, busy queue or not. This runs that on a private twin with the real engine
(tiny.en, faster-whisper int8, one thread per worker, two workers) and function_timeout_s 30. A
worker starts from a pessimistic prior of its engine's speed, so two two-minute files go first and
are waited for (each worker times its engine on their chunks); then eight two-minute files are
submitted, which now fit whole, and behind them a six-minute one (the 123 s passage three times over,
369 s) on a busy queue. Every job must complete, the long one fanned out, and no invocation may run
past 30 s: the twin's log holds Lambda's REPORT line for every invocation and a "Task timed out" line
for any that overran.

    .venv/bin/python benchmarks/short_timeout.py --out docs/benchmarks/short_timeout.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PASSAGE = ROOT / "examples" / "passage.ogg"

from whisperq.client import Client  # noqa: E402
from whisperq.local.twin import Twin  # noqa: E402
from whisperq.transcriber import audio  # noqa: E402

FUNCTION_TIMEOUT_S = 30
ENV = {"WHISPERQ_QUEUE_FUNCTION_TIMEOUT_S": str(FUNCTION_TIMEOUT_S), "WHISPERQ_QUEUE_MAX_CONCURRENCY": "2",
       # Long enough for a chunk, short enough that a killed invocation's message returns within the run.
       "WHISPERQ_QUEUE_VISIBILITY_TIMEOUT_S": "120"}


def six_minutes(directory: Path) -> Path:
    """The passage three times over (369 s of speech), as FLAC."""
    samples = audio.decode(str(PASSAGE), PASSAGE.name)
    path = directory / "six-minutes.flac"
    path.write_bytes(audio.encode_flac(np.concatenate([samples] * 3)))
    return path


def invocations(log_text: str) -> tuple[list[float], list[str]]:
    """Every invocation's duration in seconds (its REPORT line), and the timed-out lines."""
    reports = re.findall(r"^REPORT RequestId: \S+\tDuration: ([0-9.]+) ms", log_text, re.M)
    durations = [float(ms) / 1000 for ms in reports]
    return durations, [line for line in log_text.splitlines() if "Task timed out" in line]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--warm-up", type=int, default=2, help="files waited for first (the workers time their engine)")
    parser.add_argument("--ahead", type=int, default=8, help="files submitted before the long one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="whisperq-timeout-") as scratch:
        long_file = six_minutes(Path(scratch))
        log_path = os.path.join(scratch, "twin.log")
        with Twin(environ=ENV, tracing=False, log_file=log_path) as twin:
            client = Client(twin.api_url, api_key=twin.api_key)
            warm = [client.submit(str(PASSAGE)).job_id for _ in range(args.warm_up)]
            warmed = {job_id: client.wait(job_id, timeout_s=600) for job_id in warm}
            started = time.time()
            ahead = [client.submit(str(PASSAGE)).job_id for _ in range(args.ahead)]
            long_id = client.submit(str(long_file)).job_id
            finals = {job_id: client.wait(job_id, timeout_s=900) for job_id in [*ahead, long_id]}
            wall_s = time.time() - started
        durations, timed_out = invocations(Path(log_path).read_text(encoding="utf-8"))
    long_job = finals[long_id]
    result = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "system": platform.platform()},
        "functionTimeoutS": FUNCTION_TIMEOUT_S, "workers": 2, "warmUpFiles": args.warm_up, "filesAhead": args.ahead,
        "allCompleted": all(job.status == "COMPLETED" for job in [*finals.values(), *warmed.values()]),
        "warmUpFannedOut": sum(1 for job in warmed.values() if job.details.get("chunks")),
        "longJob": {"status": long_job.status, "audioS": long_job.details.get("audioDurationS"),
                    "chunks": long_job.details.get("chunks"), "chunksDone": long_job.details.get("chunksDone")},
        # The files ahead (123 s each) fit whole once the workers have timed their engine.
        "aheadFannedOut": sum(1 for job_id in ahead if finals[job_id].details.get("chunks")),
        "invocations": len(durations), "longestInvocationS": round(max(durations), 2) if durations else None,
        "timedOut": len(timed_out), "wallSAfterWarmUp": round(wall_s, 1),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    ok = result["allCompleted"] and (long_job.details.get("chunks") or 0) > 1 and not timed_out \
        and durations and max(durations) < FUNCTION_TIMEOUT_S
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
