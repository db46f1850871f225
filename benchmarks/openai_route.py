"""What the OpenAI-compatible route adds to a job: on an idle twin, each request's time at the client
against its job's own submit -> COMPLETED time (createdAt -> completedAt in the job record), and the
same for the SDK's create + upload + poll path, one request at a time.

    .venv/bin/whisperq local up &      # an idle twin (its defaults: 2 workers, tiny.en)
    .venv/bin/python benchmarks/openai_route.py examples/meeting.wav --runs 20 \
        --out docs/benchmarks/openai_route.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from whisperq.client import Client  # noqa: E402
from whisperq.local import state  # noqa: E402


def own_s(job: dict) -> float:
    """The job's own time: created -> COMPLETED, as the job record says."""
    created = datetime.fromisoformat(job["createdAt"].replace("Z", "+00:00"))
    completed = datetime.fromisoformat(job["details"]["completedAt"].replace("Z", "+00:00"))
    return (completed - created).total_seconds()


def summary(rows: list[dict]) -> dict:
    added = sorted(row["addedS"] for row in rows)
    return {"requests": len(rows), "addedMedianS": round(statistics.median(added), 4),
            "addedP90S": round(added[int(0.9 * (len(added) - 1))], 4), "addedMaxS": round(added[-1], 4),
            "addedMeanS": round(statistics.mean(added), 4),
            "jobOwnMedianS": round(statistics.median(row["jobOwnS"] for row in rows), 4),
            "clientMedianS": round(statistics.median(row["clientS"] for row in rows), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("audio")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--state-dir", default=None)
    parser.add_argument("--out")
    args = parser.parse_args()
    from openai import OpenAI

    running = state.read_state(state.state_dir(args.state_dir))
    if not running:
        sys.exit("no twin runs: start one with `whisperq local up`")
    sdk = Client(running["apiUrl"], running["apiKey"])
    openai = OpenAI(api_key=running["apiKey"], base_url=running["apiUrl"] + "/v1", max_retries=0)
    rows: dict[str, list[dict]] = {"openai": [], "sdk": []}
    for run in range(args.runs + 1):  # the first of each is a warm-up, not counted
        started = time.perf_counter()
        with open(args.audio, "rb") as handle:
            raw = openai.audio.transcriptions.with_raw_response.create(model="whisper-1", file=handle)
        client_s = time.perf_counter() - started
        text = raw.parse().text
        job = sdk.get(raw.headers["x-whisperq-job-id"])
        if run:
            rows["openai"].append({"jobId": job.job_id, "clientS": client_s, "jobOwnS": own_s(job),
                                   "addedS": client_s - own_s(job), "text": text})
        started = time.perf_counter()
        job = sdk.transcribe(args.audio, poll_s=0.05)
        client_s = time.perf_counter() - started
        if run:
            rows["sdk"].append({"jobId": job.job_id, "clientS": client_s, "jobOwnS": own_s(job),
                                "addedS": client_s - own_s(job)})
    result = {"audio": args.audio, "runs": args.runs, "machine": f"{platform.machine()}, {platform.python_version()}",
              "openai": summary(rows["openai"]), "sdk": summary(rows["sdk"]), "rows": rows}
    print(json.dumps({k: result[k] for k in ("openai", "sdk")}, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
