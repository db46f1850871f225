"""`whisperq transcribe s3://bucket/prefix/`: every audio object under a prefix, N at a time.

The objects are listed with this machine's AWS credentials (the twin's, when it runs) and a job is made
for each with its `s3://` source, so the service copies the audio server-side: no byte comes through here.
Each job id goes to a manifest (JSON lines) as soon as its job exists, and each create carries an
Idempotency-Key made of the object's bucket, key and ETag: a run that is interrupted (Ctrl-C, a lost
connection, a killed shell) and run again submits only the rest, and an object whose create was answered
but not yet written down finds its job again instead of making a second one."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from whisperq.aws.blobs import Blobs, ObjectInfo
from whisperq.cli.app import Context
from whisperq.cli.errors import EXIT_INTERRUPTED, EXIT_JOB_FAILED, EXIT_USAGE, CliError
from whisperq.client import Client
from whisperq.core.audio import content_type_for
from whisperq.core.errors import InvalidRequest, WhisperqError
from whisperq.core.jobs import iso, utc_now
from whisperq.core.sources import S3_SCHEME, parse_s3

POLL_S = 1.0


def is_prefix(argument: str) -> bool:
    """s3://bucket/ or s3://bucket/some/prefix/: a bulk run (s3://bucket/key names one object)."""
    return argument.startswith(S3_SCHEME) and (argument.endswith("/") or "/" not in argument[len(S3_SCHEME):])


def default_manifest(bucket: str, prefix: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{bucket}_{prefix}").strip("_")
    return Path(f"whisperq-{slug}.manifest.jsonl")


def idempotency_key(bucket: str, key: str, etag: str) -> str:
    """One object version's create: the same on every run."""
    return "bulk-" + hashlib.sha256(f"{bucket}\n{key}\n{etag}".encode()).hexdigest()[:48]


@dataclass
class Manifest:
    """The jobs made so far, by source; appended to (and synced) as each job is made."""

    path: Path
    jobs: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        manifest = cls(path)
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                manifest.jobs[str(entry["source"])] = str(entry["jobId"])
            except (json.JSONDecodeError, KeyError, TypeError):
                if number == len(lines):
                    # A last line cut short by an interruption: dropped (its create is made again, and
                    # finds its job by its Idempotency-Key), so that the next entry starts a line.
                    data = path.read_bytes()
                    with open(path, "r+b") as handle:
                        handle.truncate(data.rstrip(b"\n").rfind(b"\n") + 1)
                    continue
                raise CliError(f"{path}, line {number}, is not a manifest entry; move the file away to start "
                               "afresh", EXIT_JOB_FAILED) from None
        return manifest

    def count(self, sources: Iterable[str]) -> int:
        """How many of `sources` have a job in the file (read between two writes)."""
        with self._lock:
            return sum(1 for source in sources if source in self.jobs)

    def add(self, source: str, job_id: str, etag: str) -> None:
        entry = json.dumps({"source": source, "jobId": job_id, "etag": etag, "submittedAt": iso(utc_now())})
        with self._lock:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(entry + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            self.jobs[source] = job_id


@dataclass
class Outcome:
    source: str
    job_id: str | None = None
    status: str = "PENDING"
    error: str | None = None


def audio_objects(blobs: Blobs, prefix: str) -> tuple[list[ObjectInfo], int]:
    """The audio objects under `prefix` (by extension), and how many others were passed over."""
    found, others = [], 0
    for info in blobs.list_under(prefix):
        try:
            content_type_for(info.key)
        except InvalidRequest:
            others += 1
            continue
        if info.size_bytes > 0:
            found.append(info)
        else:
            others += 1
    return found, others


def run_bulk(obj: Context, client: Client, location: str, options: dict[str, Any], concurrency: int,
             manifest_path: str | None, dry_run: bool, wait: bool, timeout_s: float, out_dir: str | None, fmt: str,
             overwrite: bool, as_json: bool) -> None:
    from whisperq.cli.ops import operator_target

    bucket, prefix = parse_s3(location)
    _settings, clients = operator_target(obj)
    objects, others = audio_objects(Blobs(clients, bucket), prefix)
    manifest = Manifest.load(Path(manifest_path) if manifest_path else default_manifest(bucket, prefix))
    sources = {f"{S3_SCHEME}{bucket}/{info.key}": info for info in objects}
    pending = [source for source in sources if source not in manifest.jobs]
    obj.err.print(f"{len(objects)} audio object(s) under {location} ({others} other object(s) passed over); "
                  f"{len(objects) - len(pending)} already in {manifest.path}, {len(pending)} to submit")
    if dry_run:
        for source, info in sources.items():
            job = manifest.jobs.get(source)
            click.echo(f"{'submitted ' + job if job else 'to submit':<46} {info.size_bytes:>12}  {source}")
        return
    try:  # a manifest that cannot be written is found before any job is made
        with open(manifest.path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise CliError(f"cannot write the manifest {manifest.path}: {exc}; give another --manifest",
                       EXIT_USAGE) from exc
    outcomes = {source: Outcome(source, manifest.jobs.get(source)) for source in sources}
    try:
        _submit(obj, client, bucket, pending, sources, options, concurrency, manifest, outcomes)
        if wait:
            _wait_all(obj, client, outcomes, timeout_s, out_dir, fmt, overwrite, location, prefix)
    except KeyboardInterrupt:
        submitted = manifest.count(sources)  # what the file holds, not what the threads told us yet
        obj.err.print(f"interrupted: {submitted} of {len(outcomes)} object(s) have a job (in {manifest.path}); "
                      "run the same command again to submit the rest: no object is submitted twice")
        raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
    _report(obj, list(outcomes.values()), wait, as_json)


def _submit(obj: Context, client: Client, bucket: str, pending: list[str], sources: dict[str, ObjectInfo],
            options: dict[str, Any], concurrency: int, manifest: Manifest, outcomes: dict[str, Outcome]) -> None:
    """Make the jobs of `pending`, `concurrency` at a time, in daemon threads (Ctrl-C does not wait)."""
    work: queue.Queue[str] = queue.Queue()
    for source in pending:
        work.put(source)
    done = threading.Semaphore(0)

    def submitter() -> None:
        while True:
            try:
                source = work.get_nowait()
            except queue.Empty:
                return
            outcome = outcomes[source]
            try:
                info = sources[source]
                job = client.create_job_from(source, options or None,
                                             idempotency_key=idempotency_key(bucket, info.key, info.etag))
                manifest.add(source, job.job_id, info.etag)
                outcome.job_id, outcome.status = job.job_id, job.status
                if job.status == "FAILED":
                    outcome.error = job.error
            except WhisperqError as exc:
                outcome.status, outcome.error = "NOT SUBMITTED", exc.message
            except Exception as exc:  # noqa: BLE001 - the manifest's disk, say: named, and the run goes on
                outcome.status, outcome.error = "NOT SUBMITTED", f"{type(exc).__name__}: {exc}"
            finally:
                done.release()

    for _ in range(min(concurrency, len(pending))):
        threading.Thread(target=submitter, daemon=True, name="whisperq-bulk").start()
    for count in range(1, len(pending) + 1):
        while not done.acquire(timeout=0.2):  # short waits: Ctrl-C reaches this thread at once
            pass
        if count % 25 == 0 or count == len(pending):
            obj.err.print(f"submitted {count}/{len(pending)}")


def _wait_all(obj: Context, client: Client, outcomes: dict[str, Outcome], timeout_s: float, out_dir: str | None,
              fmt: str, overwrite: bool, location: str, prefix: str) -> None:
    """Poll the open jobs until each ends (or `timeout_s`); with --out, save each COMPLETED one's transcript
    as DIR/<key below the prefix>.<format> (one already there is kept unless --overwrite)."""
    open_ = [o for o in outcomes.values() if o.job_id and o.status not in ("COMPLETED", "FAILED", "CANCELLED")]
    finished = [o for o in outcomes.values() if o.status in ("COMPLETED", "FAILED", "CANCELLED")]
    deadline = time.monotonic() + timeout_s
    total = len(open_) + len(finished)
    ended = len(finished)
    for outcome in finished:
        if outcome.status == "COMPLETED" and out_dir:
            _save(obj, client, outcome, out_dir, fmt, overwrite, location, prefix)
    while open_:
        still = []
        for outcome in open_:
            assert outcome.job_id is not None
            job = client.get(outcome.job_id)
            outcome.status, outcome.error = job.status, job.error
            if not job.is_final:
                still.append(outcome)
                continue
            ended += 1
            obj.err.print(f"{outcome.source}: {job.status} ({ended}/{total})")
            if job.status == "COMPLETED" and out_dir:
                _save(obj, client, outcome, out_dir, fmt, overwrite, location, prefix)
        open_ = still
        if open_ and time.monotonic() >= deadline:
            obj.err.print(f"{len(open_)} job(s) still open after {timeout_s:.0f} s; they keep running")
            return
        if open_:
            time.sleep(POLL_S)


def _save(obj: Context, client: Client, outcome: Outcome, out_dir: str, fmt: str, overwrite: bool, location: str,
          prefix: str) -> None:
    key = outcome.source[len(S3_SCHEME):].split("/", 1)[1]
    root = Path(out_dir).resolve()
    target = (root / f"{key[len(prefix):].lstrip('/')}.{fmt}").resolve()
    if not target.is_relative_to(root):  # a key with ../ in it
        outcome.error = f"COMPLETED, but its key would write outside {out_dir}: download it by its job id"
        return
    if target.exists() and not overwrite:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    assert outcome.job_id is not None
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        client.download(client.transcript_url(outcome.job_id, fmt), str(partial))
        os.replace(partial, target)
    except WhisperqError as exc:
        outcome.error = f"COMPLETED, but its transcript could not be written: {exc.message}"
    finally:
        partial.unlink(missing_ok=True)


def _report(obj: Context, outcomes: list[Outcome], waited: bool, as_json: bool) -> None:
    rows = [{"source": o.source, "jobId": o.job_id, "status": o.status, **({"error": o.error} if o.error else {})}
            for o in outcomes]
    obj.emit(rows, as_json, "\n".join(f"{o.job_id or '-':<36}  {o.status:<13} {o.source}" for o in outcomes))
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    obj.err.print(", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    bad = [o for o in outcomes if o.status in ("FAILED", "CANCELLED", "NOT SUBMITTED") or
           (o.error and o.status == "COMPLETED")]
    if bad:
        lines = "\n".join(f"  {o.source}: {o.error or o.status}" for o in bad[:20])
        more = f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else ""
        raise CliError(f"{len(bad)} of {len(outcomes)} object(s) did not complete:\n{lines}{more}", EXIT_JOB_FAILED)
