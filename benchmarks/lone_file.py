"""One file on an idle twin of two workers: submit -> COMPLETED with fan-out across the idle worker (the
default) and with fan-out off, against the bare engine's own time for the same file on one thread
(measured right before, in a process of its own, the same engine settings); the same through the
OpenAI-compatible route; and, over files of several lengths cut from the same speech, where splitting
starts to pay (the break-even that sets fanout_min_duration_s).

    .venv/bin/python benchmarks/lone_file.py examples/passage.ogg --runs 5 --out docs/benchmarks/lone_file.json

Default options everywhere (faster-whisper tiny.en int8, beam 5, one thread per worker). Latency is the
client's: from the create request to the poll that sees COMPLETED (polled every 50 ms), the upload
included; the job's own createdAt -> completedAt is recorded beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from whisperq.client import Client  # noqa: E402
from whisperq.local.twin import Twin  # noqa: E402

SAMPLE_RATE = 16_000


def bare_engine_s(audio: Path, runs: int, batch_size: int) -> dict:
    """The engine alone on the whole file, one thread: a process of its own, a warm-up, the median."""
    code = f"""
import json, statistics, time
from whisperq.core.options import TranscribeOptions
from whisperq.transcriber.audio import decode
from whisperq.transcriber.engines.faster import FasterWhisperEngine
samples = decode({str(audio)!r}, {audio.name!r})
engine = FasterWhisperEngine("tiny.en", "int8", 1, {batch_size})
options = TranscribeOptions()
engine.transcribe(samples[: 16000 * 30], options)
times = []
for _ in range({runs}):
    started = time.perf_counter()
    engine.transcribe(samples, options)
    times.append(time.perf_counter() - started)
print(json.dumps({{"audioS": round(samples.size / 16000, 1), "medianS": round(statistics.median(times), 3),
                  "runsS": [round(t, 3) for t in times]}}))
"""
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src")}).stdout
    return json.loads(out.strip().splitlines()[-1])


def own_s(job: dict) -> float:
    created = datetime.fromisoformat(job["createdAt"].replace("Z", "+00:00"))
    completed = datetime.fromisoformat(job["details"]["completedAt"].replace("Z", "+00:00"))
    return round((completed - created).total_seconds(), 3)


def one_job(client: Client, path: Path) -> dict:
    started = time.perf_counter()
    job = client.create_upload(path.name, "audio/flac", size_bytes=path.stat().st_size)
    client.upload(job, str(path))
    final = client.wait(job["jobId"], 600, poll_s=0.05)
    wall = time.perf_counter() - started
    assert final["status"] == "COMPLETED", final
    return {"clientS": round(wall, 3), "jobOwnS": own_s(final), "chunks": final["details"].get("chunks", 0)}


def openai_request(openai, path: Path) -> dict:
    started = time.perf_counter()
    with path.open("rb") as file:
        answer = openai.audio.transcriptions.create(model="whisper-1", file=file)
    return {"clientS": round(time.perf_counter() - started, 3), "words": len(answer.text.split())}


def median(rows: list[dict], key: str) -> float:
    return round(statistics.median(row[key] for row in rows), 3)


def on_twin(fanout: bool, files: dict[float, Path], passage: Path, runs: int, chunk_s: int | None = None) -> dict:
    from openai import OpenAI

    env = {"WHISPERQ_QUEUE_MAX_CONCURRENCY": "2"}
    if chunk_s:  # shorter chunks than the default, and files of two of them split: where splitting stops paying
        env.update({"WHISPERQ_QUEUE_CHUNK_S": str(chunk_s), "WHISPERQ_QUEUE_FANOUT_MIN_DURATION_S": str(2 * chunk_s)})
    if not fanout:
        env["WHISPERQ_QUEUE_FANOUT_MIN_DURATION_S"] = "0"
    with tempfile.TemporaryDirectory() as tmp, Twin(workers=2, environ=env, tracing=False,
                                                     log_file=os.path.join(tmp, "twin.log")) as twin:
        client = Client(twin.api_url, api_key=twin.api_key)
        openai = OpenAI(api_key=twin.api_key, base_url=twin.api_url + "/v1", max_retries=0, timeout=120)
        for _ in range(2):  # warm both workers (model loaded, first decode done)
            one_job(client, files[min(files)])
        passage_rows = [one_job(client, passage) for _ in range(runs)]
        openai_rows = [openai_request(openai, passage) for _ in range(runs)]
        lengths = {}
        for seconds, path in sorted(files.items()):
            rows = [one_job(client, path) for _ in range(runs)]
            lengths[str(seconds)] = {"clientMedianS": median(rows, "clientS"), "chunks": rows[-1]["chunks"],
                                     "runs": rows}
    return {"fanout": fanout, "passage": {"clientMedianS": median(passage_rows, "clientS"),
                                          "jobOwnMedianS": median(passage_rows, "jobOwnS"),
                                          "chunks": passage_rows[-1]["chunks"], "runs": passage_rows},
            "openai": {"clientMedianS": median(openai_rows, "clientS"), "runs": openai_rows},
            "lengths": lengths}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("audio", type=Path, help="speech of two minutes or more (the bundled passage)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lengths", default="30,45,60,90")
    parser.add_argument("--whole-first", action="store_true", help="the twin without fan-out first")
    parser.add_argument("--chunk-s", type=int, help="the shortest chunk (and files of twice it split), to find the "
                                                     "break-even under the default's minute")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from whisperq.transcriber.audio import decode, encode_flac

    samples = decode(str(args.audio), args.audio.name)
    with tempfile.TemporaryDirectory() as tmp:
        passage = Path(tmp) / "passage.flac"
        passage.write_bytes(encode_flac(samples))
        files = {}
        for seconds in (float(v) for v in args.lengths.split(",")):
            path = Path(tmp) / f"first-{seconds:g}s.flac"
            path.write_bytes(encode_flac(samples[: int(seconds * SAMPLE_RATE)]))
            files[seconds] = path
        results: dict = {"machine": {"cpus": len(os.sched_getaffinity(0)), "platform": platform.platform(),
                                     "python": platform.python_version()},
                         "audio": args.audio.name, "runs": args.runs, "measuredAt": time.strftime("%Y-%m-%d"),
                         "chunkS": args.chunk_s}
        results["bareEngine"] = bare_engine_s(passage, args.runs, 0)
        results["bareEngineBatched"] = bare_engine_s(passage, args.runs, 4)
        print(json.dumps({"bareEngine": results["bareEngine"], "batched": results["bareEngineBatched"]}), flush=True)
        results["order"] = ["whole", "fanout"] if args.whole_first else ["fanout", "whole"]
        for fanout in ((False, True) if args.whole_first else (True, False)):
            row = on_twin(fanout, files, passage, args.runs, args.chunk_s)
            results["fanout" if fanout else "whole"] = row
            print(json.dumps({"fanout": fanout, "passage": row["passage"]["clientMedianS"],
                              "openai": row["openai"]["clientMedianS"],
                              "lengths": {k: v["clientMedianS"] for k, v in row["lengths"].items()}}), flush=True)
        bare = results["bareEngine"]["medianS"]
        results["ratios"] = {
            "passageFanoutOverBare": round(results["fanout"]["passage"]["clientMedianS"] / bare, 3),
            "openaiFanoutOverBare": round(results["fanout"]["openai"]["clientMedianS"] / bare, 3),
            "passageWholeOverBare": round(results["whole"]["passage"]["clientMedianS"] / bare, 3),
            "passageFanoutOverWhole": round(results["fanout"]["passage"]["clientMedianS"]
                                            / results["whole"]["passage"]["clientMedianS"], 3),
            "passageFanoutOverBareBatched": round(results["fanout"]["passage"]["clientMedianS"]
                                                  / results["bareEngineBatched"]["medianS"], 3),
        }
        print(json.dumps(results["ratios"]), flush=True)
        if args.out:
            args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
