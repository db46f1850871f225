"""`whisperq transcribe`: upload files, wait for their jobs, print or save their transcripts.

Each file runs in a thread of its own (upload, then wait), and the main thread only watches them, so
Ctrl-C stops at once: it names every file whose upload did not finish, prints every job id with how to
follow it, and keeps what was already written. Transcripts go out in the order of the files, each as
soon as it and those before it are done; --out never overwrites a file."""

from __future__ import annotations

import concurrent.futures
import functools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from whisperq.cli.app import Context, cli
from whisperq.cli.errors import EXIT_CONFLICT, EXIT_INTERRUPTED, EXIT_JOB_FAILED, EXIT_USAGE, CliError
from whisperq.client import Client
from whisperq.core.audio import content_type_for
from whisperq.core.errors import WhisperqError
from whisperq.core.writers import WRITERS

DEFAULT_WAIT_TIMEOUT_S = 1800.0
FORMATS = click.Choice(list(WRITERS))


def _options(language: str | None, translate: bool, word_timestamps: bool, prompt: str | None,
             speakers: dict[str, Any]) -> dict[str, Any]:
    options: dict[str, Any] = dict(speakers)
    if language:
        options["language"] = language
    if translate:
        options["task"] = "translate"
    if word_timestamps:
        options["wordTimestamps"] = True
    if prompt:
        options["initialPrompt"] = prompt
    return options


def _speakers(diarize: bool, count: int | None, least: int | None, most: int | None) -> dict[str, Any]:
    """The diarization options: any speaker count given turns diarization on."""
    hints = {"numSpeakers": count, "minSpeakers": least, "maxSpeakers": most}
    hints = {name: value for name, value in hints.items() if value is not None}
    if count is not None and (least is not None or most is not None):
        raise CliError("give --speakers, or --min-speakers and --max-speakers, not both", EXIT_USAGE)
    return {"diarize": True, **hints} if diarize or hints else {}


class Reporter:
    """Progress on stderr, by file name: a rich bar per file on a terminal, one plain line per change
    otherwise."""

    def __init__(self, obj: Context):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.obj = obj
        self.interactive = obj.err.is_terminal
        # The bar shows the upload's bytes, then, for a long file fanned out across workers, its chunks.
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[amount]}"),
                                 TimeElapsedColumn(), console=obj.err, transient=True, disable=not self.interactive)
        self._lock = threading.Lock()
        self._sent: dict[Any, int] = {}  # bytes sent per upload task, of its size
        self._sizes: dict[Any, int] = {}

    def __enter__(self) -> Reporter:
        self.progress.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: Any) -> None:
        self.progress.__exit__(kind, error, trace)

    def task(self, name: str, size: int) -> Any:
        task = self.progress.add_task(f"{name}: uploading", total=size, amount="")
        self._sizes[task] = size
        self._sent[task] = 0
        return task

    def advance(self, task: Any, amount: int) -> None:
        """Bytes of the upload sent (called for every block read, from the upload threads)."""
        with self._lock:
            self._sent[task] += amount
            sent = self._sent[task]
        self.progress.update(task, advance=amount, amount=f"{sent / 1e6:.1f}/{self._sizes[task] / 1e6:.1f} MB")

    def update(self, task: Any, name: str, job: dict[str, Any]) -> None:
        """A change of the job: its status, and its chunks' progress when it was fanned out."""
        details = job.get("details") or {}
        line = f"{name}: {job['status']}"
        if details.get("chunks"):
            done, total = int(details.get("chunksDone") or 0), int(details["chunks"])
            line += f" ({done}/{total} chunks)"
            if self.interactive:
                self.progress.update(task, total=total, completed=done, amount=f"{done}/{total} chunks")
        self.say(task, line if self.interactive else f"{line} (job {job['jobId']})")

    def say(self, task: Any, text: str) -> None:
        if self.interactive:
            self.progress.update(task, description=text)
        else:
            with self._lock:
                self.obj.err.print(text)


@dataclass
class FileRun:
    """One file's way through: its job, and how far it got (what Ctrl-C reports)."""

    path: str
    target: Path | None = None  # where --out writes its transcript
    job_id: str | None = None
    phase: str = "starting"  # starting, uploading, waiting, done
    job: dict[str, Any] | None = None
    error: str | None = None  # why it did not complete
    exit_code: int = EXIT_JOB_FAILED
    delivered: bool = False  # its transcript written (--out) or printed

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


def run_file(client: Client, reporter: Reporter, run: FileRun, options: dict[str, Any], wait: bool,
             timeout_s: float, on_done: Callable[[FileRun], None] | None = None) -> FileRun:
    """Upload one file and (unless not `wait`) wait for its job; `on_done` once it completed."""
    remote = is_source(run.path)
    size = 0 if remote else os.path.getsize(run.path)
    task = reporter.task(run.name, size)
    try:
        if remote:  # the service copies (s3://) or fetches (https://) it: nothing is uploaded from here
            run.job_id = client.create_job_from(run.path, options or None).job_id
        else:
            job = client.create_upload(run.name, content_type_for(run.name), options, size_bytes=size)
            run.job_id, run.phase = job["jobId"], "uploading"
            reporter.say(task, f"{run.name}: uploading {size} bytes (job {run.job_id})")
            client.upload(job, run.path, on_progress=lambda n: reporter.advance(task, n))
        run.phase = "waiting"
        if not wait:
            run.job = client.status(run.job_id)
        else:
            reporter.say(task, f"{run.name}: waiting (job {run.job_id})")
            run.job = client.wait(run.job_id, timeout_s, lambda current: reporter.update(task, run.name, current))
    except WhisperqError as exc:
        run.error, run.exit_code = exc.message, exc.exit_code
        return run
    finally:
        if run.phase == "waiting":
            run.phase = "done"
    if run.job is not None and run.job["status"] not in ("COMPLETED", "UPLOADING", "QUEUED", "PROCESSING"):
        run.error = run.job["status"] + (f": {run.job['error']}" if run.job.get("error") else "")
        run.exit_code = EXIT_CONFLICT if run.job["status"] == "CANCELLED" else EXIT_JOB_FAILED
    elif on_done is not None and run.job is not None and run.job["status"] == "COMPLETED":
        try:
            on_done(run)
        except (WhisperqError, OSError) as exc:
            run.error = f"COMPLETED, but its transcript could not be written: {exc}"
            run.exit_code = getattr(exc, "exit_code", EXIT_JOB_FAILED)
    return run


def out_targets(files: tuple[str, ...], out_dir: str, fmt: str, overwrite: bool) -> list[Path]:
    """Where each file's transcript goes in `out_dir`: <stem>.<format>, or <name>.<format> for files
    whose stems clash (meeting.wav and meeting.mp3). Refused before anything is uploaded when a target
    exists (unless `overwrite`) or two files would still share one."""
    stems = [Path(path).stem for path in files]
    targets = [Path(out_dir) / (f"{Path(path).stem}.{fmt}" if stems.count(Path(path).stem) == 1
                                else f"{Path(path).name}.{fmt}") for path in files]
    shared = sorted({str(t) for t in targets if targets.count(t) > 1})
    if shared:
        raise CliError(f"two files would write {', '.join(shared)}: give each file a name of its own", EXIT_USAGE)
    existing = [str(t) for t in targets if t.exists()]
    if existing and not overwrite:
        raise CliError(f"{', '.join(existing)} already exist(s); nothing was uploaded. Remove them, choose another "
                       "--out, or add --overwrite", EXIT_CONFLICT)
    return targets


def is_source(argument: str) -> bool:
    """Audio that is already somewhere: an s3:// object or an http(s) URL, not a local file."""
    return argument.startswith(("s3://", "https://", "http://"))


def _check_files(files: tuple[str, ...]) -> None:
    """Refuse what cannot be transcribed before anything is uploaded."""
    for path in files:
        if is_source(path):
            continue
        if not os.path.isfile(path):
            raise CliError(f"{path}: no such file (give local audio files, s3://bucket/key, s3://bucket/prefix/ or "
                           "https:// URLs); nothing was uploaded", EXIT_USAGE)
        content_type_for(path)  # a clear error naming the accepted types
        if os.path.getsize(path) == 0:
            raise CliError(f"{path} is empty (0 bytes): nothing to transcribe; nothing was uploaded", EXIT_USAGE)


def _start(call: Callable[[], FileRun], slots: threading.Semaphore) -> concurrent.futures.Future[FileRun]:
    """Run `call` in a daemon thread (Ctrl-C must not wait for it), at most as many at once as `slots`."""
    future: concurrent.futures.Future[FileRun] = concurrent.futures.Future()

    def run() -> None:
        with slots:
            try:
                future.set_result(call())
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                future.set_exception(exc)

    threading.Thread(target=run, daemon=True, name="whisperq-transcribe").start()
    return future


def _interrupted(obj: Context, runs: list[FileRun], fmt: str) -> None:
    """Ctrl-C: say where each file got, and how to go on."""
    for run in runs:
        if run.delivered:
            continue
        if run.error:
            obj.err.print(f"{run.name}: {run.error}")
        elif run.job_id is None:
            obj.err.print(f"{run.name}: not started")
        elif run.phase == "uploading":
            obj.err.print(f"upload of {run.name} interrupted: job {run.job_id} has no audio and will expire; "
                          "run it again")
        elif run.job is not None and run.job.get("status") == "COMPLETED":
            obj.err.print(f"{run.name}: job {run.job_id} COMPLETED, its transcript not written yet: "
                          f"`whisperq download {run.job_id} --format {fmt}`")
        else:
            obj.err.print(f"{run.name}: job {run.job_id} keeps running: `whisperq wait {run.job_id}`, then "
                          f"`whisperq download {run.job_id}`")
    written = [str(run.target) for run in runs if run.delivered and run.target is not None]
    if written:
        obj.err.print(f"kept: {', '.join(written)}")


@cli.command()
@click.argument("files", nargs=-1, required=True)
@click.option("--format", "fmt", type=FORMATS, default="txt", show_default=True, help="Transcript format to fetch.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Write each transcript to DIR/<file stem>.<format> (DIR/<file name>.<format> when two "
                   "files share a stem) instead of printing it; never overwrites.")
@click.option("--overwrite", is_flag=True, help="With --out: replace transcripts that are already there.")
@click.option("--language", help="Language code (default: detect; English-only models take en only).")
@click.option("--translate", is_flag=True, help="Translate into English (multilingual models).")
@click.option("--word-timestamps", is_flag=True, help="Word timings in the json, srt and vtt outputs.")
@click.option("--prompt", help="Initial prompt: names and jargon the audio uses.")
@click.option("--diarize", is_flag=True,
              help="Label who speaks when: [SPEAKER_00] before each line (txt, srt), <v SPEAKER_00> (vtt), a speaker "
                   "column (tsv), speaker on every segment and word (json).")
@click.option("--speakers", "num_speakers", type=click.IntRange(1, 20),
              help="With --diarize (implied): exactly this many speakers.")
@click.option("--min-speakers", type=click.IntRange(1, 20), help="With --diarize (implied): at least this many.")
@click.option("--max-speakers", type=click.IntRange(1, 20), help="With --diarize (implied): at most this many.")
@click.option("--model", help="One of the deployment's models (`whisperq models --api` lists them; default: its "
                              "default), run by that model's own workers.")
@click.option("--no-wait", is_flag=True, help="Upload and print the job ids; do not wait.")
@click.option("--concurrency", type=click.IntRange(1, 16), default=2, show_default=True,
              help="Files uploaded and waited on at once.")
@click.option("--timeout", "timeout_s", type=float, default=DEFAULT_WAIT_TIMEOUT_S, show_default=True,
              help="Seconds to wait for each job.")
@click.option("--json", "as_json", is_flag=True, help="Print the final jobs as JSON instead of transcripts.")
@click.option("--manifest", "manifest_path", type=click.Path(dir_okay=False),
              help="s3://bucket/prefix/ only: the manifest of the jobs made (default: "
                   "./whisperq-<bucket>_<prefix>.manifest.jsonl); run again, only the rest is submitted.")
@click.option("--dry-run", is_flag=True, help="s3://bucket/prefix/ only: list the objects; submit nothing.")
@click.pass_obj
def transcribe(obj: Context, files: tuple[str, ...], fmt: str, out_dir: str | None, overwrite: bool,
               language: str | None, translate: bool, word_timestamps: bool, prompt: str | None, diarize: bool,
               num_speakers: int | None, min_speakers: int | None, max_speakers: int | None, model: str | None,
               no_wait: bool,
               concurrency: int, timeout_s: float, as_json: bool, manifest_path: str | None, dry_run: bool) -> None:
    """Transcribe audio FILES and print (or save) their transcripts. A FILE is a local file (uploaded), an
    s3://bucket/key object or an https:// URL (the service copies or fetches it; nothing goes through
    this machine), or s3://bucket/prefix/: every audio object under the prefix, --concurrency at a time,
    its jobs written to a manifest so that an interrupted run, run again, submits only the rest.

    Accepted: aac, flac, m4a, mp3, mp4, oga, ogg, opus, wav, webm. Several files are labelled by name on a terminal
    (plain transcripts when piped); files that failed are listed at the end with their reasons."""
    from whisperq.cli import bulk

    speakers = _speakers(diarize, num_speakers, min_speakers, max_speakers)
    prefixes = [f for f in files if bulk.is_prefix(f)]
    if prefixes:
        if len(files) > 1:
            raise CliError("give one s3://bucket/prefix/ alone (its objects are the files)", EXIT_USAGE)
        bulk.run_bulk(obj, obj.client(model), prefixes[0],
                      _options(language, translate, word_timestamps, prompt, speakers), concurrency,
                      manifest_path, dry_run, not no_wait, timeout_s, out_dir, fmt, overwrite, as_json)
        return
    if manifest_path or dry_run:
        raise CliError("--manifest and --dry-run go with an s3://bucket/prefix/", EXIT_USAGE)
    _check_files(files)
    targets: list[Path | None] = [None] * len(files)
    if out_dir and not no_wait and not as_json:
        targets = list(out_targets(files, out_dir, fmt, overwrite))
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    client = obj.client(model)
    options = _options(language, translate, word_timestamps, prompt, speakers)
    runs = [FileRun(path, target) for path, target in zip(files, targets, strict=True)]
    lock = threading.Lock()
    save = functools.partial(_save, obj, client, fmt, overwrite, lock)

    slots = threading.Semaphore(concurrency)
    label = len(files) > 1 and obj.out.is_terminal and not as_json
    try:
        with Reporter(obj) as reporter:
            futures = [_start(functools.partial(run_file, client, reporter, run, options, not no_wait, timeout_s,
                                                save if run.target else None), slots) for run in runs]
            for run, future in zip(runs, futures, strict=True):
                while not future.done():  # short waits: Ctrl-C reaches this thread at once
                    concurrent.futures.wait([future], timeout=0.2)
                future.result()
                if no_wait or as_json or run.target is not None or run.error or run.job is None:
                    continue
                try:
                    text = client.download_text(run.job["transcriptUrls"][fmt])
                except WhisperqError as exc:
                    run.error, run.exit_code = f"COMPLETED, but its transcript could not be fetched: {exc}", \
                        exc.exit_code
                    continue
                if label:
                    click.echo(f"==> {run.name} <==")
                click.echo(text, nl=not text.endswith("\n") and label)
                run.delivered = True
    except KeyboardInterrupt:
        _interrupted(obj, runs, fmt)
        raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
    _finish(obj, runs, no_wait, as_json, label)


def _save(obj: Context, client: Client, fmt: str, overwrite: bool, lock: threading.Lock, run: FileRun) -> None:
    """--out: a transcript written as soon as its job completed, whole or not at all."""
    assert run.job is not None and run.target is not None
    partial = run.target.with_name(f".{run.target.name}.{os.getpid()}.part")
    try:
        client.download(run.job["transcriptUrls"][fmt], str(partial))
        if overwrite:
            os.replace(partial, run.target)
        else:
            os.link(partial, run.target)  # refuses a file that appeared since the check
    except FileExistsError:
        raise OSError(f"{run.target} appeared meanwhile; it was left as it is") from None
    finally:
        partial.unlink(missing_ok=True)
    run.delivered = True
    with lock:
        obj.err.print(f"wrote {run.target}")


def _finish(obj: Context, runs: list[FileRun], no_wait: bool, as_json: bool, label: bool) -> None:
    """What the command prints at the end (job ids, or the jobs as JSON), and its error if any file failed."""
    jobs = [run.job or {"file": run.name, "jobId": run.job_id, "error": run.error} for run in runs]
    if no_wait:
        obj.emit(jobs, as_json, "\n".join(f"{run.job_id}  {run.name}" if label else str(run.job_id)
                                          for run in runs if run.job_id))
    elif as_json:
        obj.emit(jobs if len(jobs) > 1 else jobs[0], True)
    failed = [run for run in runs if run.error]
    if failed:
        lines = [f"  {run.name}" + (f" (job {run.job_id})" if run.job_id else "") + f": {run.error}" for run in failed]
        codes = {run.exit_code for run in failed}
        message = lines[0].strip() if len(runs) == 1 else \
            f"{len(failed)} of {len(runs)} file(s) did not complete:\n" + "\n".join(lines)
        raise CliError(message, codes.pop() if len(codes) == 1 else EXIT_JOB_FAILED)
