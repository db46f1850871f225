"""Create the pipeline's resources with boto3, from settings and queue_config.

Used by the local twin (against moto) and by tests; in AWS the SAM template declares the same
resources. Every step is idempotent: provisioning twice changes nothing."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from whisperq.aws.clients import Clients
from whisperq.aws.errors import error_code
from whisperq.aws.jobs_table import OPEN_ATTRIBUTE, OPEN_INDEX, OWNER_INDEX
from whisperq.config import Settings

JOBS_BY_OWNER_INDEX = OWNER_INDEX
JOB_TTL_ATTRIBUTE = "expiresAt"


@dataclass(frozen=True)
class Resources:
    bucket: str
    table: str
    chunks_table: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    dlq_arn: str
    callbacks_queue_url: str = ""
    callbacks_queue_arn: str = ""
    # Each model tier's queue and DLQ (URLs and ARNs, by the names above), by tier id; the default tier's
    # are queue_url ... dlq_arn.
    tiers: dict[str, dict[str, str]] = field(default_factory=dict)

    def tier(self, tier: str) -> dict[str, str]:
        return self.tiers[tier]

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


# The callbacks' queue (infra/template.yaml has the same): a sender's attempt has 10 s, a message is
# retried with backoff a few times (transcriber/callbacks.py) and kept a day at most.
CALLBACKS_QUEUE = {"VisibilityTimeout": "30", "MessageRetentionPeriod": "86400"}


def provision(clients: Clients, settings: Settings) -> Resources:
    """Bucket with an ObjectCreated notification per model tier (prefix audio/<tier>/, to the tier's queue;
    the drop folder's to the default tier's), a queue + DLQ with a redrive policy per tier, the callbacks'
    queue, the jobs table and the chunks table."""
    tiers = {tier.id: _tier_queues(clients, settings, tier.queue_name(settings.queue_name),
                                   tier.dlq_name(settings.queue_name, settings.dlq_name)) | {"model": tier.model}
             for tier in settings.tiers}
    sqs = clients.sqs
    callbacks_url = sqs.create_queue(QueueName=settings.callbacks_queue_name, Attributes=CALLBACKS_QUEUE)["QueueUrl"]
    create_bucket(clients, settings.bucket, settings.region)
    _notify(clients, settings, {tier: queues["queue_arn"] for tier, queues in tiers.items()})
    _tables(clients, settings)
    default = tiers[settings.tiers.default.id]
    return Resources(settings.bucket, settings.table, settings.chunks_table, default["queue_url"],
                     default["queue_arn"], default["dlq_url"], default["dlq_arn"], callbacks_url,
                     _arn_of(clients, callbacks_url), tiers)


def _arn_of(clients: Clients, url: str) -> str:
    attributes = clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]
    return str(attributes["QueueArn"])


def _tier_queues(clients: Clients, settings: Settings, queue_name: str, dlq_name: str) -> dict[str, str]:
    """One tier's queue and DLQ (URLs and ARNs, by Resources' names); the queue lets the bucket send to it."""
    sqs, config = clients.sqs, settings.queue
    dlq_url = sqs.create_queue(QueueName=dlq_name, Attributes=config.dlq_attributes())["QueueUrl"]
    queue_url = sqs.create_queue(QueueName=queue_name)["QueueUrl"]
    # Set (rather than create with) the attributes so that a second provisioning with other
    # values updates the queue instead of failing with QueueAlreadyExists.
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes=config.queue_attributes(_arn_of(clients, dlq_url)))
    queue_arn = _arn_of(clients, queue_url)
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowBucketNotifications",
                "Effect": "Allow",
                "Principal": {"Service": "s3.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{settings.bucket}"}},
            }
        ],
    }
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
    return {"queue_url": queue_url, "queue_arn": queue_arn, "dlq_url": dlq_url, "dlq_arn": _arn_of(clients, dlq_url)}


def _notify(clients: Clients, settings: Settings, queue_arns: dict[str, str]) -> None:
    """Setting the notification makes S3 send an s3:TestEvent to each queue, as AWS does. Uploads under a
    tier's prefix (audio/<tier>/) go to its queue; when the drop folder is on, files dropped under its
    prefix go to the default tier's. (S3 refuses overlapping prefixes: audio/ itself is no rule's.)"""
    rules = [(f"whisperq-audio-uploaded-{tier.id}", tier.audio_prefix, queue_arns[tier.id])
             for tier in settings.tiers]
    if settings.inbox:
        rules.append(("whisperq-inbox-dropped", settings.inbox, queue_arns[settings.tiers.default.id]))
    clients.s3.put_bucket_notification_configuration(
        Bucket=settings.bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "Id": name,
                    "QueueArn": queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}},
                }
                for name, prefix, queue_arn in rules
            ]
        },
    )


def _tables(clients: Clients, settings: Settings) -> None:
    ddb = clients.dynamodb
    _create_table(ddb, settings.table, dict(
        # The same table as infra/template.yaml: key, the owner and open-jobs indexes, the TTL attribute.
        AttributeDefinitions=[
            {"AttributeName": "jobId", "AttributeType": "S"},
            {"AttributeName": "owner", "AttributeType": "S"},
            {"AttributeName": "createdAt", "AttributeType": "S"},
            {"AttributeName": OPEN_ATTRIBUTE, "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "jobId", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": JOBS_BY_OWNER_INDEX,
                "KeySchema": [
                    {"AttributeName": "owner", "KeyType": "HASH"},
                    {"AttributeName": "createdAt", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            },
            {
                "IndexName": OPEN_INDEX,
                "KeySchema": [
                    {"AttributeName": OPEN_ATTRIBUTE, "KeyType": "HASH"},
                    {"AttributeName": "createdAt", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["status"]},
            },
        ],
    ))
    # One item per chunk of a fanned-out job (job id + chunk index), as in infra/template.yaml.
    _create_table(ddb, settings.chunks_table, dict(
        AttributeDefinitions=[{"AttributeName": "jobId", "AttributeType": "S"},
                              {"AttributeName": "chunk", "AttributeType": "N"}],
        KeySchema=[{"AttributeName": "jobId", "KeyType": "HASH"}, {"AttributeName": "chunk", "KeyType": "RANGE"}],
    ))


def create_bucket(clients: Clients, name: str, region: str) -> None:
    """A bucket, unless it exists (the twin also makes its stand-in for a user's own source bucket)."""
    try:
        if region == "us-east-1":
            clients.s3.create_bucket(Bucket=name)
        else:
            clients.s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    except ClientError as exc:
        if error_code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise


def _create_table(ddb: Any, name: str, definition: dict[str, Any]) -> None:
    """Create an on-demand table with the TTL attribute on, unless it exists."""
    try:
        ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **definition)
        ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        ddb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": JOB_TTL_ATTRIBUTE}
        )
    except ClientError as exc:
        if error_code(exc) != "ResourceInUseException":
            raise
