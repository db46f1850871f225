"""What a simulated run costs on AWS, from request and duration counts and published prices.

Prices: us-east-1, on-demand, x86, as published on the AWS pricing pages (aws.amazon.com/lambda/pricing,
/sqs/pricing, /s3/pricing, /dynamodb/pricing, /api-gateway/pricing), read 2026-12-02 from what those
pages said when last checked (Lambda, SQS, S3 and API Gateway prices have been unchanged since 2020;
DynamoDB on-demand since its November 2024 cut). Free tiers are left out. Every price is a parameter."""

from __future__ import annotations

from dataclasses import dataclass

from whisperq.planner.simulate import Outcome, Pipeline

PRICES_SOURCE = "AWS pricing pages, us-east-1, on-demand, x86, as of 2026-12-02; free tiers excluded"


@dataclass(frozen=True)
class Prices:
    lambda_gb_s: float = 0.0000166667
    lambda_request: float = 0.20 / 1e6
    sqs_request: float = 0.40 / 1e6  # standard queue, per 64 KB chunk of a request
    s3_put: float = 0.005 / 1000
    s3_get: float = 0.0004 / 1000
    s3_gb_month: float = 0.023
    dynamodb_write: float = 0.625 / 1e6  # write request unit, on demand
    dynamodb_read: float = 0.125 / 1e6
    api_request: float = 3.50 / 1e6  # REST API


@dataclass(frozen=True)
class Usage:
    """How clients use the API, and how long audio is kept: the per-job counts the bill depends on."""

    status_polls_per_job: int = 10
    api_ms: float = 60.0  # one API function call (512 MB)
    api_memory_mb: int = 512
    authorizer_ms: float = 5.0  # one authorizer call (128 MB), uncached: once per request
    audio_bytes_per_s: float = 16_000.0  # 128 kbit/s, an MP3 or a WAV of 8 kHz speech
    audio_retention_days: float = 7.0
    transcript_bytes_per_s: float = 100.0


def cost(outcome: Outcome, pipeline: Pipeline, prices: Prices = Prices(), usage: Usage = Usage()) -> dict:
    """Dollars by service for the simulated run, and per audio hour."""
    jobs, messages, chunks = outcome.jobs, outcome.messages, outcome.chunks
    api_requests = jobs * (2 + usage.status_polls_per_job)  # create, polls, the transcript's redirect
    gb = pipeline.memory_mb / 1024
    lambda_cost = (outcome.busy_s * gb * prices.lambda_gb_s + outcome.attempts * prices.lambda_request
                   + api_requests * (2 * prices.lambda_request + usage.api_ms / 1000 * usage.api_memory_mb / 1024
                                     * prices.lambda_gb_s + usage.authorizer_ms / 1000 * 0.125 * prices.lambda_gb_s))
    # Per message: the S3 event's send, the poller's receive, the delete, a heartbeat; chunk sends too.
    sqs = (messages * 4 + chunks) * prices.sqs_request
    audio_gb = outcome.audio_s * usage.audio_bytes_per_s / 1e9
    s3 = ((jobs * 6 + chunks * 3) * prices.s3_put + (jobs + chunks * 2) * prices.s3_get
          + (audio_gb * usage.audio_retention_days / 30 + outcome.audio_s * usage.transcript_bytes_per_s * 5 / 1e9)
          * prices.s3_gb_month)
    # Per job: create, queued, processing, completed (+ heartbeats); per chunk: plan, lease, done.
    dynamodb = (jobs * 5 + chunks * 3) * prices.dynamodb_write + jobs * usage.status_polls_per_job \
        * prices.dynamodb_read
    api = api_requests * prices.api_request
    total = lambda_cost + sqs + s3 + dynamodb + api
    hours = outcome.audio_s / 3600 or 1.0
    return {"lambda": round(lambda_cost, 4), "sqs": round(sqs, 4), "s3": round(s3, 4),
            "dynamodb": round(dynamodb, 4), "apiGateway": round(api, 4), "total": round(total, 4),
            "perAudioHour": round(total / hours, 5), "audioHours": round(hours, 2), "prices": PRICES_SOURCE}
