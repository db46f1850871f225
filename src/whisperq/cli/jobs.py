"""What a user does: transcribe files, follow jobs, download transcripts, list and cancel jobs."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import click

from whisperq.cli.app import Context, cli
from whisperq.cli.errors import EXIT_JOB_FAILED, CliError
from whisperq.client import Client
from whisperq.core.audio import content_type_for
from whisperq.core.jobs import JobStatus
from whisperq.core.writers import WRITERS

DEFAULT_WAIT_TIMEOUT_S = 1800.0
FORMATS = click.Choice(list(WRITERS))


def _options(language: str | None, translate: bool, word_timestamps: bool, prompt: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if language:
        options["language"] = language
    if translate:
        options["task"] = "translate"
    if word_timestamps:
        options["wordTimestamps"] = True
    if prompt:
        options["initialPrompt"] = prompt
    return options


class _Reporter:
    """Progress on stderr: a rich bar per file on a terminal, one plain line per change otherwise."""

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

    def __enter__(self) -> _Reporter:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def task(self, name: str, size: int) -> Any:
        task = self.progress.add_task(f"uploading {name}", total=size, amount="")
        self._sizes[task] = size
        self._sent[task] = 0
        return task

    def advance(self, task: Any, amount: int) -> None:
        """Bytes of the upload sent (called for every block read, from the upload threads)."""
        with self._lock:
            self._sent[task] += amount
            sent = self._sent[task]
        self.progress.update(task, advance=amount, amount=f"{sent / 1e6:.1f}/{self._sizes[task] / 1e6:.1f} MB")

    def update(self, task: Any, job: dict[str, Any]) -> None:
        """A change of the job: its status, and its chunks' progress when it was fanned out."""
        details = job.get("details") or {}
        line = f"job {job['jobId']}: {job['status']}"
        if details.get("chunks"):
            done, total = int(details.get("chunksDone") or 0), int(details["chunks"])
            line += f" ({done}/{total} chunks)"
            if self.interactive:
                self.progress.update(task, total=total, completed=done, amount=f"{done}/{total} chunks")
        self.say(task, line)

    def say(self, task: Any, text: str) -> None:
        if self.interactive:
            self.progress.update(task, description=text)
        else:
            with self._lock:
                self.obj.err.print(text)


def _submit_and_wait(obj: Context, client: Client, reporter: _Reporter, path: str, options: dict[str, Any],
                     wait: bool, timeout_s: float) -> dict[str, Any]:
    name = os.path.basename(path)
    size = os.path.getsize(path)
    job = client.create_upload(name, content_type_for(name), options)
    job_id = job["jobId"]
    task = reporter.task(name, size)
    reporter.say(task, f"job {job_id}: uploading {name} ({size} bytes)")
    try:
        client.upload(job, path, on_progress=lambda n: reporter.advance(task, n))
    except KeyboardInterrupt:
        obj.err.print(f"upload of {name} interrupted: job {job_id} has no audio and will expire; run it again")
        raise
    if not wait:
        return client.status(job_id)
    reporter.say(task, f"job {job_id}: waiting")
    try:
        return client.wait(job_id, timeout_s, lambda current: reporter.update(task, current))
    except KeyboardInterrupt:
        obj.err.print(f"stopped waiting; job {job_id} keeps running: `whisperq wait {job_id}`")
        raise


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--format", "fmt", type=FORMATS, default="txt", show_default=True, help="Transcript format to fetch.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Write each transcript to DIR/<file stem>.<format> instead of printing it.")
@click.option("--language", help="Language code (default: detect).")
@click.option("--translate", is_flag=True, help="Translate into English (multilingual models).")
@click.option("--word-timestamps", is_flag=True, help="Word timings in the json, srt and vtt outputs.")
@click.option("--prompt", help="Initial prompt: names and jargon the audio uses.")
@click.option("--no-wait", is_flag=True, help="Upload and print the job ids; do not wait.")
@click.option("--concurrency", type=click.IntRange(1, 16), default=2, show_default=True,
              help="Files uploaded and waited on at once.")
@click.option("--timeout", "timeout_s", type=float, default=DEFAULT_WAIT_TIMEOUT_S, show_default=True,
              help="Seconds to wait for each job.")
@click.option("--json", "as_json", is_flag=True, help="Print the final jobs as JSON instead of transcripts.")
@click.pass_obj
def transcribe(obj: Context, files: tuple[str, ...], fmt: str, out_dir: str | None, language: str | None,
               translate: bool, word_timestamps: bool, prompt: str | None, no_wait: bool, concurrency: int,
               timeout_s: float, as_json: bool) -> None:
    """Upload audio FILES (wav, flac, mp3, m4a, ogg, webm), wait, and print (or save) their transcripts."""
    client = obj.client()
    options = _options(language, translate, word_timestamps, prompt)
    for path in files:
        content_type_for(path)  # refuse unsupported files before anything is uploaded
    with _Reporter(obj) as reporter, ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(_submit_and_wait, obj, client, reporter, path, options, not no_wait, timeout_s)
                   for path in files]
        results = [future.result() for future in futures]
    if no_wait:
        obj.emit(results, as_json, "\n".join(job["jobId"] for job in results))
        return
    failures = [f"{os.path.basename(p)} (job {j['jobId']}): {j.get('error')}"
                for p, j in zip(files, results, strict=True) if j["status"] != "COMPLETED"]
    if as_json:
        obj.emit(results if len(results) > 1 else results[0], True)
    else:
        for path, job in zip(files, results, strict=True):
            if job["status"] != "COMPLETED":
                continue
            url = job["transcriptUrls"][fmt]
            if out_dir:
                Path(out_dir).mkdir(parents=True, exist_ok=True)
                target = Path(out_dir) / f"{Path(path).stem}.{fmt}"
                client.download(url, str(target))
                obj.err.print(f"wrote {target}")
            else:
                click.echo(client.download_text(url), nl=False)
    if failures:
        raise CliError("transcription failed: " + "; ".join(failures), EXIT_JOB_FAILED)


def _job_table(jobs: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("JOB", "STATUS", "FILE", "CREATED", "AUDIO S", "LANGUAGE", "ERROR"):
        table.add_column(column)
    colours = {"COMPLETED": "green", "FAILED": "red", "CANCELLED": "yellow"}
    for job in jobs:
        status, details = job["status"], job.get("details", {})
        progress = f" {details.get('chunksDone', 0)}/{details['chunks']} chunks" if details.get("chunks") else ""
        language = details.get("language") or ""
        if language and details.get("languageProbability") is not None:
            language += f" ({details['languageProbability']:.2f})"  # how sure the detection was
        table.add_row(job["jobId"], f"[{colours.get(status, 'cyan')}]{status}[/]{progress}", job["filename"],
                      job["createdAt"], str(details.get("audioDurationS", "")), language,
                      (job.get("error") or "")[:60])
    return table


@cli.command()
@click.argument("job_ids", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="JSON even on a terminal.")
@click.pass_obj
def status(obj: Context, job_ids: tuple[str, ...], as_json: bool) -> None:
    """Print jobs: status, timings, error, download URLs (JSON when piped, a table on a terminal)."""
    client = obj.client()
    jobs = [client.status(job_id) for job_id in job_ids]
    data = jobs[0] if len(jobs) == 1 else jobs
    obj.emit(data, as_json or not obj.out.is_terminal, _job_table(jobs))


@cli.command()
@click.argument("job_ids", nargs=-1, required=True)
@click.option("--timeout", "timeout_s", type=float, default=DEFAULT_WAIT_TIMEOUT_S, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def wait(obj: Context, job_ids: tuple[str, ...], timeout_s: float, as_json: bool) -> None:
    """Wait until jobs end; exit 6 if any FAILED, 8 on timeout (they keep running)."""
    client = obj.client()
    jobs = []
    for job_id in job_ids:
        try:
            jobs.append(client.wait(job_id, timeout_s, lambda j: obj.err.print(f"job {j['jobId']}: {j['status']}")))
        except KeyboardInterrupt:
            obj.err.print(f"stopped waiting; job {job_id} keeps running: `whisperq wait {job_id}`")
            raise
    obj.emit(jobs[0] if len(jobs) == 1 else jobs, as_json or not obj.out.is_terminal, _job_table(jobs))
    failed = [job["jobId"] for job in jobs if job["status"] != JobStatus.COMPLETED.value]
    if failed:
        raise CliError(f"job(s) did not complete: {', '.join(failed)}", EXIT_JOB_FAILED)


@cli.command()
@click.argument("job_id")
@click.option("--format", "fmt", type=FORMATS, default="txt", show_default=True)
@click.option("--out", "out_path", type=click.Path(dir_okay=False), help="Write to a file (default: stdout).")
@click.pass_obj
def download(obj: Context, job_id: str, fmt: str, out_path: str | None) -> None:
    """Download one transcript of a COMPLETED job (exit 4 while it is not)."""
    client = obj.client()
    url = client.transcript_url(job_id, fmt)
    if out_path:
        written = client.download(url, out_path)
        obj.err.print(f"wrote {out_path} ({written} bytes)")
    else:
        click.echo(client.download_text(url), nl=False)


@cli.command()
@click.option("--status", "status_filter", type=click.Choice([s.value for s in JobStatus]))
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def jobs(obj: Context, status_filter: str | None, limit: int, as_json: bool) -> None:
    """List your jobs, newest first."""
    client = obj.client()
    found: list[dict[str, Any]] = []
    cursor = None
    while len(found) < limit:
        page = client.list_jobs(status_filter, min(100, limit - len(found)), cursor)
        found += page["jobs"]
        cursor = page["nextCursor"]
        if not cursor:
            break
    obj.emit(found, as_json or not obj.out.is_terminal, _job_table(found))


@cli.command()
@click.argument("job_ids", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def cancel(obj: Context, job_ids: tuple[str, ...], as_json: bool) -> None:
    """Cancel jobs that have not finished, and delete their audio and transcripts (exit 4 if finished)."""
    client = obj.client()
    jobs = [client.cancel(job_id) for job_id in job_ids]
    obj.emit(jobs[0] if len(jobs) == 1 else jobs, as_json, "\n".join(f"cancelled {j['jobId']}" for j in jobs))
