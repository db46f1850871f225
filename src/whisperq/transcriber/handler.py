"""The transcriber Lambda: SQS batches of S3 upload events in, partial batch failures out.

The engine and adapters are built once per process (a warm Lambda container, or one worker of
the local twin) and reused for every batch."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from whisperq import faults
from whisperq.aws.blobs import Blobs
from whisperq.aws.chunks import ChunksTable
from whisperq.aws.clients import Clients
from whisperq.aws.jobs_table import JobsTable
from whisperq.aws.queues import Queue
from whisperq.aws.retry import RetryPolicy
from whisperq.config import Settings
from whisperq.transcriber.context import RetryCounter, WorkerContext
from whisperq.transcriber.engines import Engine, load_engine
from whisperq.transcriber.messages import Delivery
from whisperq.transcriber.service import Transcriber

logger = Logger(service="whisperq-transcriber")
metrics = Metrics(namespace="whisperq", service="whisperq-transcriber")
# A batch whose every record failed is still answered with batchItemFailures (not an invocation
# error): SQS then treats each record the same way, and a poison message is not a function error.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)

_runtime: Transcriber | None = None
_runtime_lock = threading.Lock()


def warm_up(settings: Settings | None = None) -> Transcriber:
    """Build the settings, adapters and engine once per process (the cold start) and keep them."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            settings = settings or Settings.from_env()
            injector = faults.injector_for(settings.faults, "transcriber", logger)
            clients = Clients(settings, customize=injector.install_aws_errors)
            engine = load_engine(settings)
            logger.info("model loaded", extra={"engine": engine.name, "model": engine.model_name,
                                               "model_load_s": round(engine.load_time_s, 3)})
            _runtime = build_runtime(settings, clients, engine, faults=injector)
            # What the cold start built (90,000 objects with the engine) lives as long as the
            # process: out of the garbage collector's sight, so that its full collections walk
            # only what the invocations made (one over everything took 70 ms here).
            gc.collect()
            gc.freeze()
        return _runtime


def build_runtime(settings: Settings, clients: Clients, engine: Engine, log: Logger = logger,
                  sleep: Callable[[float], None] = time.sleep, faults: faults.Injector | None = None) -> Transcriber:
    """The transcriber with its adapters; their retries are counted on the attempt being worked on."""
    retries = RetryCounter()
    runtime: Transcriber | None = None

    def on_retry(what: str, error: BaseException, attempt: int) -> None:
        if runtime is not None:
            runtime.note_retry(what, error, attempt)

    policy = RetryPolicy(on_retry=on_retry, sleep=sleep)
    queues: dict[str, Queue] = {}

    def queue(queue_arn: str) -> Queue:
        if queue_arn not in queues:
            queues[queue_arn] = Queue.by_arn(clients, queue_arn, policy)
        return queues[queue_arn]

    jobs = JobsTable(clients, settings.table, policy)
    chunks = ChunksTable(clients, settings.chunks_table, jobs, settings.job_retention_days * 86400, policy)
    callbacks_queue: list[Queue] = []

    def callbacks() -> Queue:
        if not callbacks_queue:
            callbacks_queue.append(Queue.by_name(clients, settings.callbacks_queue_name, policy))
        return callbacks_queue[0]

    context = WorkerContext(settings, jobs, chunks, Blobs(clients, settings.bucket, policy), engine, log,
                            metrics=metrics, queue_by_arn=queue, faults=faults, retries=retries,
                            callbacks_queue=callbacks)
    runtime = Transcriber(context)
    return runtime


def reset(runtime: Transcriber | None = None) -> None:
    """Forget the process's runtime (or use `runtime`): for tests and a re-configured twin."""
    global _runtime
    with _runtime_lock:
        _runtime = runtime


def _delivery(record: SQSRecord, deadline: float | None = None) -> Delivery:
    attributes = record.attributes
    sent = attributes.get("SentTimestamp")
    return Delivery(
        message_id=record.message_id,
        receive_count=int(attributes.approximate_receive_count),
        sent_timestamp_ms=int(sent) if sent else None,
        receipt_handle=record.receipt_handle,
        queue_arn=record.event_source_arn,
        deadline=deadline,
    )


# When the current invocation must end (time.monotonic()), for the record handler: Powertools calls it
# with the record alone. One invocation at a time per process, as in Lambda.
_deadline: float | None = None


def record_handler(record: SQSRecord) -> list[str]:
    outcomes = warm_up().handle_message(record.body, _delivery(record, _deadline))
    logger.info("message handled", extra={"message_id": record.message_id, "outcomes": outcomes})
    return outcomes


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _deadline
    runtime = warm_up()
    remaining_ms = context.get_remaining_time_in_millis() if hasattr(context, "get_remaining_time_in_millis") else None
    _deadline = time.monotonic() + remaining_ms / 1000 if remaining_ms is not None else None
    # The first record is taken at once; only those that wait behind it in the batch are worth a
    # QUEUED write (with batch size 1, none: one DynamoDB write per job saved).
    for raw in event.get("Records", [])[1:]:
        record = SQSRecord(raw)
        runtime.mark_queued(record.body, _delivery(record))
        runtime.note_last_call(record.body, _delivery(record))  # its last delivery: noted before anything runs
    return dict(process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                         context=context))
