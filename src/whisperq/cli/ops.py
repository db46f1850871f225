"""What an operator does: the dead-letter queue, the settings in force, the deployment's parameters."""

from __future__ import annotations

import json
from typing import Any

import click

from whisperq import queue_config
from whisperq.cli.app import Context, cli
from whisperq.cli.errors import EXIT_NOT_FOUND, EXIT_UNREACHABLE, EXIT_USAGE, CliError
from whisperq.config import Settings
from whisperq.core.errors import WhisperqError


def operator_target(obj: Context) -> tuple[Settings, Any]:
    """Settings and AWS clients for operator commands: the running twin when there is one (and no
    --endpoint-url says otherwise), else AWS through boto3's usual credential and region rules."""
    from whisperq.aws.clients import Clients
    from whisperq.local.twin import LOCAL_CREDENTIALS

    running = obj.twin()
    if running and not obj.endpoint_url:
        resources = running["resources"]
        settings = Settings.from_env(
            endpoint_url=running["endpointUrl"], dynamodb_endpoint_url=running.get("dynamodbEndpointUrl"),
            region=running["region"], bucket=resources["bucket"],
            table=resources["table"], queue_name=resources["queue_url"].rsplit("/", 1)[-1],
            dlq_name=resources["dlq_url"].rsplit("/", 1)[-1],
        )
        return settings, Clients(settings, LOCAL_CREDENTIALS)
    settings = Settings.from_env(endpoint_url=obj.endpoint_url)
    if not obj.endpoint_url:
        from whisperq.aws.clients import credentials_found

        if not credentials_found():
            raise CliError(
                f"no local twin runs (state dir {obj.state_dir}) and no AWS credentials were found: start the twin "
                "with `whisperq local up`, or give the credentials of the deployed stack's account (AWS_PROFILE, "
                "`aws configure`, AWS_ACCESS_KEY_ID...)", EXIT_UNREACHABLE)
    return settings, Clients(settings)


def _dlq(obj: Context) -> Any:
    from whisperq.aws.dlq import DeadLetterQueue
    from whisperq.aws.jobs_table import JobsTable
    from whisperq.aws.queues import Queue
    from whisperq.core.tiers import Tier

    settings, clients = operator_target(obj)
    queue, dead = settings.queue_name, settings.dlq_name
    model = click.get_current_context().meta.get(DLQ_MODEL)
    if model:  # another tier's: its queue and DLQ are named after it (core/tiers.py)
        running = obj.twin()
        default = running["model"] if running and not obj.endpoint_url else settings.model
        tier = Tier(model, default=model == default)
        queue, dead = tier.queue_name(settings.queue_name), tier.dlq_name(settings.queue_name, settings.dlq_name)
    try:
        dead_letters = Queue.by_name(clients, dead)
    except WhisperqError as exc:
        if not model or "NonExistentQueue" not in exc.message and "does not exist" not in exc.message:
            raise
        raise CliError(f"no dead-letter queue {dead}: is {model!r} one of the deployment's models? (the default "
                       f"model's is {settings.dlq_name}: set WHISPERQ_MODEL to the stack's default model, or leave "
                       "--model out)", EXIT_NOT_FOUND) from None
    return DeadLetterQueue(clients, dead_letters, Queue.by_name(clients, queue), JobsTable(clients, settings.table))


DLQ_MODEL = "whisperq.dlq.model"


@cli.group()
@click.option("--model", help="The dead letters of this model's tier (default: the default model's).")
@click.pass_context
def dlq(ctx: click.Context, model: str | None) -> None:
    """Inspect, replay and purge the dead-letter queue (uploads that failed maxReceiveCount times); each
    model tier has its own (--model)."""
    ctx.meta[DLQ_MODEL] = model


@dlq.command("list")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def dlq_list(obj: Context, limit: int, as_json: bool) -> None:
    """Dead letters with their job, the job's error, receive count and age (they stay in the queue)."""
    from rich.table import Table

    letters = _dlq(obj).peek(limit=limit)
    table = Table(box=None, header_style="bold")
    for column in ("MESSAGE", "JOB", "STATUS", "RECEIVES", "AGE S"):
        table.add_column(column, no_wrap=True)
    table.add_column("ERROR", overflow="fold")
    for d in letters:
        table.add_row(d.message_id, d.job_id or "-", d.job_status or "-", str(d.receive_count), f"{d.age_s:.0f}",
                      d.error or "")
    obj.emit([d.to_dict() for d in letters], as_json or not obj.out.is_terminal,
             table if letters else "the dead-letter queue is empty")


@dlq.command("show")
@click.argument("message_id")
@click.pass_obj
def dlq_show(obj: Context, message_id: str) -> None:
    """One dead letter in full (JSON), body included."""
    for letter in _dlq(obj).peek(limit=10_000):
        if letter.message_id == message_id:
            click.echo(json.dumps(letter.to_dict(), indent=2))
            return
    raise CliError(f"no message {message_id} in the dead-letter queue", EXIT_NOT_FOUND)


@dlq.command("replay")
@click.option("--all", "replay_all", is_flag=True, help="Every dead letter.")
@click.option("--job", "job_ids", multiple=True, help="Only this job's messages (repeatable).")
@click.option("--max", "max_messages", type=click.IntRange(1), help="At most this many messages.")
@click.option("--rate", "rate_per_s", type=float, help="At most this many messages a second.")
@click.option("--dry-run", is_flag=True, help="Say what would move; move nothing.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def dlq_replay(obj: Context, replay_all: bool, job_ids: tuple[str, ...], max_messages: int | None,
               rate_per_s: float | None, dry_run: bool, as_json: bool) -> None:
    """Reset dead-lettered jobs and move their messages back to the transcription queue.

    Uses SQS's native redrive where the endpoint supports it (--all without --max), else moves
    messages itself, sending before deleting: a crash may duplicate a message, never lose one."""
    if replay_all == bool(job_ids):
        raise CliError("say what to replay: --all, or --job ID (repeatable)", EXIT_USAGE)
    dead_letters = _dlq(obj)
    if job_ids:
        job_ids = _whole_ids(job_ids, [d.job_id for d in dead_letters.peek(limit=10_000) if d.job_id])
    report = dead_letters.replay(job_ids=list(job_ids) or None, max_messages=max_messages, rate_per_s=rate_per_s,
                                 dry_run=dry_run)
    obj.emit(report.to_dict(), as_json, "\n".join(report.lines(dry_run)))


def _whole_ids(given: tuple[str, ...], known: list[str]) -> tuple[str, ...]:
    """Job ids as given, or the one dead-lettered job each (8 characters or more) starts."""
    whole = []
    for job_id in given:
        found = sorted({known_id for known_id in known if known_id.startswith(job_id.lower())})
        if len(job_id) >= 8 and len(found) == 1:
            whole.append(found[0])
        elif len(job_id) >= 8 and len(found) > 1:
            raise CliError(f"{job_id!r} is the start of {len(found)} dead-lettered jobs; give more of the id",
                           EXIT_USAGE)
        else:
            whole.append(job_id)  # a whole id (or nothing in the DLQ matches: replay says it moved nothing)
    return tuple(whole)


@dlq.command("purge")
@click.option("--yes", is_flag=True, help="Really delete every dead letter.")
@click.pass_obj
def dlq_purge(obj: Context, yes: bool) -> None:
    """Delete every message in the dead-letter queue (their jobs stay FAILED)."""
    if not yes:
        raise CliError("purging deletes every dead letter for good; add --yes to do it", EXIT_USAGE)
    _dlq(obj).purge()
    obj.err.print("purged the dead-letter queue")


@cli.group()
def config() -> None:
    """The settings in force."""




@config.command("show")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def config_show(obj: Context, as_json: bool) -> None:
    """Every setting and queue_config knob in force, and where each came from (default or a variable)."""
    settings = Settings.from_env()
    rows: list[dict[str, Any]] = []
    for name, origin in settings.origins.items():
        value = getattr(settings.queue, name[len("queue."):]) if name.startswith("queue.") else getattr(settings, name)
        if name == "callback_secret" and value:
            value = "(set)"
        rows.append({"setting": name, "value": value, "source": origin})
    text = "\n".join(f"{r['setting']:<36} {str(r['value']):<28} {r['source']}" for r in rows)
    obj.emit(rows, as_json, text)


@cli.group()
def infra() -> None:
    """The AWS deployment (infra/template.yaml)."""


@infra.command("params")
@click.option("--format", "fmt", type=click.Choice(["sam", "json"]), default="sam", show_default=True,
              help="sam: Key=Value pairs for `sam deploy --parameter-overrides`; json: an object.")
def infra_params(fmt: str) -> None:
    """Print the template parameters that carry queue_config (defaults, WHISPERQ_QUEUE_* variables and
    WHISPERQ_QUEUE_CONFIG applied), after checking them against the limits of AWS."""
    params = queue_config.load(target="aws").validate("aws").sam_parameters()
    if fmt == "json":
        click.echo(json.dumps(params, indent=2))
    else:
        click.echo(" ".join(f"{name}={value}" for name, value in params.items()))
