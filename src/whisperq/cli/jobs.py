"""What a user does after `whisperq transcribe` (cli/transcribe.py): follow jobs, download transcripts,
list and cancel jobs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import click

from whisperq.cli.app import Context, cli
from whisperq.cli.errors import EXIT_CONFLICT, EXIT_INTERRUPTED, EXIT_JOB_FAILED, EXIT_NOT_FOUND, EXIT_USAGE, CliError
from whisperq.cli.transcribe import DEFAULT_WAIT_TIMEOUT_S, FORMATS
from whisperq.client import Client
from whisperq.core.jobs import JobStatus


def _job_table(jobs: Sequence[Mapping[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    table.add_column("JOB", no_wrap=True, min_width=36)  # whole: an id cut short cannot be pasted back
    for column in ("STATUS", "FILE", "CREATED", "AUDIO S", "LANGUAGE"):
        table.add_column(column)
    table.add_column("ERROR", overflow="fold")
    colours = {"COMPLETED": "green", "FAILED": "red", "CANCELLED": "yellow"}
    for job in jobs:
        status, details = job["status"], job.get("details", {})
        progress = f" {details.get('chunksDone', 0)}/{details['chunks']} chunks" if details.get("chunks") else ""
        language = details.get("language") or ""
        if language and details.get("languageProbability") is not None:
            language += f" ({details['languageProbability']:.2f})"  # how sure the detection was
        table.add_row(job["jobId"], f"[{colours.get(status, 'cyan')}]{status}[/]{progress}", job["filename"],
                      job["createdAt"], str(details.get("audioDurationS", "")), language,
                      job.get("error") or "")
    return table


# How far back a job id's prefix is looked for among the caller's jobs, and how short it may be (the
# first group of a UUID: a prefix of a character or two would pick a job by accident).
PREFIX_SEARCH_LIMIT = 1000
MIN_PREFIX = 8


def resolve(client: Client, job_ids: tuple[str, ...]) -> list[str]:
    """Full job ids for `job_ids`, each a whole id or the unique start (8 characters or more) of one of
    the caller's jobs."""
    short = [job_id for job_id in job_ids if len(job_id) < MIN_PREFIX]
    if short:
        raise CliError(f"{short[0]!r} is too short to name a job: give the whole id, or its first {MIN_PREFIX} "
                       "characters or more", EXIT_USAGE)
    if all(len(job_id) == 36 for job_id in job_ids):
        return list(job_ids)
    known: list[str] = []
    cursor = None
    while len(known) < PREFIX_SEARCH_LIMIT:
        page = client.list_jobs(None, 100, cursor)
        known += [job["jobId"] for job in page["jobs"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    return [job_id if len(job_id) == 36 else _match(job_id, known, complete=not cursor) for job_id in job_ids]


def _match(prefix: str, known: list[str], complete: bool) -> str:
    found = [job_id for job_id in known if job_id.startswith(prefix.lower())]
    if len(found) == 1 and complete:
        return found[0]
    if not complete:
        raise CliError(f"you have more than {PREFIX_SEARCH_LIMIT} jobs, so a prefix cannot be known to name one: "
                       f"give {prefix!r}'s whole id", EXIT_USAGE)
    if not found:
        raise CliError(f"no job of yours starts with {prefix!r}; `whisperq jobs` lists them", EXIT_NOT_FOUND)
    raise CliError(f"{prefix!r} is the start of {len(found)} jobs ({', '.join(found[:5])}"
                   f"{', ...' if len(found) > 5 else ''}); give more of the id", EXIT_USAGE)


@cli.command()
@click.argument("job_ids", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="JSON even on a terminal.")
@click.pass_obj
def status(obj: Context, job_ids: tuple[str, ...], as_json: bool) -> None:
    """Print jobs: status, timings, error, download URLs (JSON when piped, a table on a terminal)."""
    client = obj.client()
    jobs = [client.status(job_id) for job_id in resolve(client, job_ids)]
    data = jobs[0] if len(jobs) == 1 else jobs
    obj.emit(data, as_json or not obj.out.is_terminal, _job_table(jobs))


@cli.command()
@click.argument("job_ids", nargs=-1, required=True)
@click.option("--timeout", "timeout_s", type=float, default=DEFAULT_WAIT_TIMEOUT_S, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def wait(obj: Context, job_ids: tuple[str, ...], timeout_s: float, as_json: bool) -> None:
    """Wait until jobs end; exit 6 if any FAILED, 4 if any was CANCELLED, 8 on timeout (they keep running)."""
    client = obj.client()
    ids = resolve(client, job_ids)
    jobs = []
    for index, job_id in enumerate(ids):
        try:
            jobs.append(client.wait(job_id, timeout_s, lambda j: obj.err.print(f"job {j['jobId']}: {j['status']}")))
        except KeyboardInterrupt:
            left = " ".join(ids[index:])
            obj.err.print(f"stopped waiting; job(s) {left} keep running: `whisperq wait {left}`")
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
    obj.emit(jobs[0] if len(jobs) == 1 else jobs, as_json or not obj.out.is_terminal, _job_table(jobs))
    failed = [f"{job['jobId']}: {job.get('error')}" for job in jobs if job["status"] == JobStatus.FAILED.value]
    cancelled = [job["jobId"] for job in jobs if job["status"] == JobStatus.CANCELLED.value]
    if failed:
        raise CliError("job(s) failed: " + "; ".join(failed), EXIT_JOB_FAILED)
    if cancelled:
        raise CliError(f"job(s) were cancelled, so there is no transcript to wait for: {', '.join(cancelled)}",
                       EXIT_CONFLICT)


@cli.command()
@click.argument("job_id")
@click.option("--format", "fmt", type=FORMATS, default="txt", show_default=True)
@click.option("--out", "out_path", type=click.Path(dir_okay=False), help="Write to a file (default: stdout).")
@click.pass_obj
def download(obj: Context, job_id: str, fmt: str, out_path: str | None) -> None:
    """Download one transcript of a COMPLETED job (exit 4 while it is not)."""
    client = obj.client()
    [job_id] = resolve(client, (job_id,))
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
    jobs = [client.cancel(job_id) for job_id in resolve(client, job_ids)]
    obj.emit(jobs[0] if len(jobs) == 1 else jobs, as_json, "\n".join(f"cancelled {j['jobId']}" for j in jobs))
