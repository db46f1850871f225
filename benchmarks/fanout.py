"""Fan-out against whole-file transcription, through the real path on private twins (API, pre-signed
upload, S3 event, SQS, workers): one long file's submit -> COMPLETED latency with and without fan-out,
how it scales over 1, 2 and 4 worker processes, the merged transcript's word error rate against the
unsplit one's, and the throughput of many long files at once.

    .venv/bin/python benchmarks/long_speech.py benchmarks/.audio --minutes 20.5 --pieces 20 --piece-minutes 6
    .venv/bin/python benchmarks/fanout.py benchmarks/.audio --out docs/benchmarks/fanout.json

Default options (beam 5, faster-whisper int8, one thread per worker); fan-out at the defaults (a chunk
for each idle worker, none under 30 s) or off (fanout_min_duration_s=0).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import normalised  # noqa: E402
from tests.wer import wer  # noqa: E402

from whisperq.client import Client  # noqa: E402
from whisperq.core.jobs import parse_iso  # noqa: E402
from whisperq.local.twin import Twin  # noqa: E402


def run(files: list[Path], workers: int, fanout: bool, timeout_s: float = 1800) -> dict:
    """Submit every file at once to a fresh twin; per-job latency, transcripts, and the wall time."""
    env = {"WHISPERQ_QUEUE_MAX_CONCURRENCY": str(workers)}
    if not fanout:
        env["WHISPERQ_QUEUE_FANOUT_MIN_DURATION_S"] = "0"
    with tempfile.TemporaryDirectory() as tmp, Twin(workers=workers, environ=env, tracing=False,
                                                     log_file=os.path.join(tmp, "twin.log")) as twin:
        client = Client(twin.api_url, api_key=twin.api_key)

        def submit(path: Path) -> str:
            job = client.create_upload(path.name, "audio/wav", size_bytes=path.stat().st_size)
            client.upload(job, str(path))
            return job["jobId"]

        started = time.time()
        with ThreadPoolExecutor(4) as pool:
            ids = list(pool.map(submit, files))
        finals = [client.wait(job_id, timeout_s, poll_s=0.25) for job_id in ids]
        wall_s = time.time() - started
        jobs = []
        for path, job in zip(files, finals, strict=True):
            details = job.get("details", {})
            text = client.download_text(job["transcriptUrl"]) if job["status"] == "COMPLETED" else ""
            truth = normalised(path.with_suffix(".txt").read_text()).split()
            jobs.append({
                "file": path.name, "status": job["status"], "audioS": details.get("audioDurationS"),
                "latencyS": round((parse_iso(job["updatedAt"]) - parse_iso(job["createdAt"])).total_seconds(), 2),
                "chunks": details.get("chunks", 0), "transcribeS": details.get("transcribeS"),
                "wer": round(wer(truth, normalised(text).split()), 4),
            })
    audio_s = sum(j["audioS"] or 0 for j in jobs)
    return {"workers": workers, "fanout": fanout, "files": len(files), "wallS": round(wall_s, 1),
            "audioSecondsPerWallSecond": round(audio_s / wall_s, 2), "jobs": jobs}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("audio_dir", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, help="Throughput pairs (off, on) to run, alternating.")
    parser.add_argument("--workers", default="2,2,1,4", help="Latency cases: worker counts, the first whole.")
    args = parser.parse_args()
    long_file = args.audio_dir / "long.wav"
    results: dict = {"machine": {"cpus": len(os.sched_getaffinity(0)), "platform": platform.platform()},
                     "latency": [], "throughput": []}

    def save() -> None:
        if args.out:
            args.out.write_text(json.dumps(results, indent=1) + "\n")

    if args.out and args.out.exists():  # add to what an earlier invocation measured
        results = json.loads(args.out.read_text())
    counts = [int(v) for v in args.workers.split(",")]
    cases = () if args.skip_latency else ((counts[0], False), *((n, True) for n in counts[1:]))
    for workers, fanout in cases:
        row = run([long_file], workers, fanout)
        print(json.dumps({k: v for k, v in row.items() if k != "jobs"} | row["jobs"][0]), flush=True)
        results["latency"].append(row)
        save()
    if not args.skip_throughput:
        pieces = sorted(args.audio_dir.glob("piece-*.wav"))
        for fanout in (False, True) * args.repeat:
            row = run(pieces, 2, fanout)
            print(json.dumps({k: v for k, v in row.items() if k != "jobs"}), flush=True)
            results["throughput"].append(row)
            save()


if __name__ == "__main__":
    main()
