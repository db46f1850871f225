"""Audio that is already somewhere, measured on a private twin with the real model:

1. a whole prefix: N objects in the twin's source bucket (its stand-in for a user's own), transcribed by one
   CLI command (`whisperq transcribe s3://bucket/prefix/`), interrupted with Ctrl-C once about a quarter of
   them have a job, then run again: how many it submitted each time, and whether any object got two jobs;
2. the drop folder: M objects put under the inbox with plain S3 calls, until each has its transcripts
   beside it; then one object's event delivered a second time: how many jobs it made.

    .venv/bin/python benchmarks/sources.py --objects 200 --drops 20 --out docs/benchmarks/sources.json

Each object is the 6.3 s meeting sample (tests/examples); tiny.en, int8, beam 5, one thread per worker.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from whisperq.aws.clients import Clients  # noqa: E402
from whisperq.client import Client  # noqa: E402
from whisperq.local.twin import LOCAL_CREDENTIALS, Twin  # noqa: E402

AUDIO = (ROOT / "examples" / "meeting.wav").read_bytes()
WHISPERQ = [sys.executable, "-m", "whisperq.cli.main"]


def jobs_by_source(client: Client) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for job in client.iter_jobs():
        if job.get("source"):
            found.setdefault(job["source"], []).append(job["jobId"])
    return found


def bulk(twin: Twin, state_dir: str, objects: int, interrupt_at: int) -> dict:
    s3 = Clients(twin.settings, LOCAL_CREDENTIALS).s3
    bucket = twin.settings.granted_buckets[0]
    for index in range(objects):
        s3.put_object(Bucket=bucket, Key=f"archive/call-{index:04d}.wav", Body=AUDIO, ContentType="audio/wav")
    manifest = Path(state_dir) / "archive.jsonl"
    command = [*WHISPERQ, "--state-dir", state_dir, "transcribe", f"s3://{bucket}/archive/", "--concurrency", "4",
               "--manifest", str(manifest), "--json", "--timeout", "1800"]
    started = time.time()
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while not manifest.exists() or len(manifest.read_text().splitlines()) < interrupt_at:
        time.sleep(0.01)
    first.send_signal(signal.SIGINT)
    _, first_err = first.communicate(timeout=120)
    interrupted_s = time.time() - started
    kept = len(manifest.read_text().splitlines())
    second = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    wall_s = time.time() - started
    rows = json.loads(second.stdout)
    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    per_source = jobs_by_source(Client(twin.api_url, api_key=twin.api_key))
    archive = {source: ids for source, ids in per_source.items() if "/archive/" in source}
    return {
        "objects": objects,
        "firstRun": {"exitCode": first.returncode, "jobsInManifest": kept, "seconds": round(interrupted_s, 1),
                     "said": first_err.strip().splitlines()[-1]},
        "secondRun": {"exitCode": second.returncode,
                      "said": [line for line in second.stderr.splitlines() if "to submit" in line]
                      + second.stderr.strip().splitlines()[-1:]},
        "completed": sum(1 for row in rows if row["status"] == "COMPLETED"),
        "manifestEntries": len(entries),
        "distinctSourcesInManifest": len({e["source"] for e in entries}),
        "objectsWithAJob": len(archive),
        "objectsWithTwoJobsOrMore": sum(1 for ids in archive.values() if len(ids) > 1),
        "wallS": round(wall_s, 1),
        "audioSecondsPerWallSecond": round(objects * 6.3 / wall_s, 1),
    }


def drops(twin: Twin, count: int) -> dict:
    clients = Clients(twin.settings, LOCAL_CREDENTIALS)
    s3, bucket, inbox = clients.s3, twin.settings.bucket, twin.settings.inbox
    keys = [f"{inbox}bench/meeting-{n:02d}.wav" for n in range(count)]
    started = time.time()
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=AUDIO)
    waiting = set(keys)
    while waiting and time.time() - started < 1800:
        listed = {o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                                     Prefix=f"{inbox}bench/")
                  for o in page.get("Contents", [])}
        waiting = {key for key in waiting if f"{key}.txt" not in listed or f"{key}.json" not in listed}
        time.sleep(0.2)
    wall_s = time.time() - started
    client = Client(twin.api_url, api_key=twin.api_key)
    before = jobs_by_source(client)
    etag = s3.head_object(Bucket=bucket, Key=keys[0])["ETag"].strip('"')
    event = {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                          "s3": {"bucket": {"name": bucket},
                                 "object": {"key": keys[0], "size": len(AUDIO), "eTag": etag}}}]}
    clients.sqs.send_message(QueueUrl=twin.resources.queue_url, MessageBody=json.dumps(event))
    time.sleep(10)  # the duplicate's batch is handled within a second on an idle twin
    after = jobs_by_source(client)
    dropped = {source: ids for source, ids in after.items() if "/bench/" in source}
    statuses = [client.get(ids[0])["status"] for ids in dropped.values()]
    return {
        "dropped": count,
        "withTranscriptsBeside": count - len(waiting),
        "completed": statuses.count("COMPLETED"),
        "wallS": round(wall_s, 1),
        "jobsForTheObjectSentTwice": len(after.get(f"s3://{bucket}/{keys[0]}", [])),
        "jobsBeforeTheDuplicate": sum(len(v) for k, v in before.items() if "/bench/" in k),
        "jobsAfterTheDuplicate": sum(len(v) for v in dropped.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--drops", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state_dir:
        twin = Twin(workers=args.workers, state_directory=Path(state_dir), tracing=False,
                    environ={"WHISPERQ_QUEUE_MAX_CONCURRENCY": str(args.workers)})
        with twin:
            result = {
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                "workers": args.workers, "engine": f"{twin.settings.engine} {twin.settings.model}",
                "bulk": bulk(twin, state_dir, args.objects, max(1, args.objects // 4)),
                "dropFolder": drops(twin, args.drops),
                "measuredAt": time.strftime("%Y-%m-%d"),
            }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
