"""Settings: one frozen object, built once from the environment and validated at start.

Order of precedence, highest first: an explicit keyword argument to `Settings.from_env(...)`
(what a CLI flag becomes), then the environment variable named in `whisperq.constants`, then the
default written here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from whisperq import constants, queue_config
from whisperq.core.errors import ConfigError
from whisperq.core.tiers import Tiers
from whisperq.queue_config import QueueConfig

ENGINES = ("faster-whisper", "openai-whisper", "synthetic")
COMPUTE_TYPES = ("int8", "int8_float32", "float32", "float16", "int8_float16", "default")


# Each setting and the environment variable it comes from (AWS_DEFAULT_REGION backs up AWS_REGION).
ENV_VARS: dict[str, str] = {
    "region": constants.AWS_REGION,
    "endpoint_url": constants.AWS_ENDPOINT_URL,
    "dynamodb_endpoint_url": constants.AWS_ENDPOINT_URL_DYNAMODB,
    "bucket": constants.BUCKET,
    "table": constants.TABLE,
    "chunks_table": constants.CHUNKS_TABLE,
    "queue_name": constants.QUEUE_NAME,
    "dlq_name": constants.DLQ_NAME,
    "callbacks_queue_name": constants.CALLBACKS_QUEUE_NAME,
    "upload_url_expiry_s": constants.UPLOAD_URL_EXPIRY_S,
    "download_url_expiry_s": constants.DOWNLOAD_URL_EXPIRY_S,
    "max_upload_bytes": constants.MAX_UPLOAD_BYTES,
    "max_audio_duration_s": constants.MAX_AUDIO_DURATION_S,
    "job_retention_days": constants.JOB_RETENTION_DAYS,
    "engine": constants.ENGINE,
    "model": constants.MODEL,
    "models": constants.MODELS,
    "compute_type": constants.COMPUTE_TYPE,
    "cpu_threads": constants.CPU_THREADS,
    "engine_batch_size": constants.ENGINE_BATCH_SIZE,
    "cache_dir": constants.CACHE_DIR,
    "synthetic_seconds_per_audio_second": constants.SYNTHETIC_SECONDS_PER_AUDIO_SECOND,
    "synthetic_failure_rate": constants.SYNTHETIC_FAILURE_RATE,
    "fault_poison_key": constants.FAULT_POISON_KEY,
    "faults": constants.FAULTS,
    "allow_private_callbacks": constants.ALLOW_PRIVATE_CALLBACKS,
    "callback_secret": constants.CALLBACK_SECRET,
    "source_buckets": constants.SOURCE_BUCKETS,
    "allow_private_sources": constants.ALLOW_PRIVATE_SOURCES,
    "source_fetch_timeout_s": constants.SOURCE_FETCH_TIMEOUT_S,
    "inbox_prefix": constants.INBOX_PREFIX,
    "inbox_owner": constants.INBOX_OWNER,
    "inbox_output_prefix": constants.INBOX_OUTPUT_PREFIX,
    "openai_wait_s": constants.OPENAI_WAIT_S,
    "openai_max_bytes": constants.OPENAI_MAX_BYTES,
    "openai_waits_per_key": constants.OPENAI_WAITS_PER_KEY,
    "api_concurrency": constants.API_CONCURRENCY,
    "worker_nice": constants.WORKER_NICE,
    "api_provisioned": constants.API_PROVISIONED,
    "moto_processes": constants.MOTO_PROCESSES,
}


@dataclass(frozen=True)
class Settings:
    """Everything whisperq reads from its environment."""

    region: str = "us-east-1"
    endpoint_url: str | None = None
    dynamodb_endpoint_url: str | None = None  # DynamoDB's own, when it differs from endpoint_url
    bucket: str = "whisperq-local"
    table: str = "whisperq-jobs"
    chunks_table: str = "whisperq-chunks"  # one item per chunk of a fanned-out job
    queue_name: str = "whisperq-transcription"
    dlq_name: str = "whisperq-transcription-dlq"
    # Callbacks of final jobs wait here for their sender, never holding a transcriber (transcriber/callbacks.py).
    callbacks_queue_name: str = "whisperq-callbacks"
    upload_url_expiry_s: int = 900
    download_url_expiry_s: int = 3600
    max_upload_bytes: int = 500 * 1024 * 1024
    max_audio_duration_s: int = 4 * 3600
    job_retention_days: int = 90  # job records expire (DynamoDB TTL) this long after creation
    engine: str = "faster-whisper"
    model: str = "tiny.en"  # the default model (whisper-1 on the OpenAI route); a worker's: its tier's
    # The deployment's models besides `model`, comma-separated: each runs on a tier of its own (its queue, DLQ
    # and function; core/tiers.py). Empty: `model` alone.
    models: str = ""
    compute_type: str = "int8"
    # The engine's threads; 0: follow the function (core/capacity.engine_threads: on Lambda its memory's
    # vCPUs, on the twin the machine's cores shared among its workers, elsewhere this machine's cores).
    cpu_threads: int = 0
    # faster-whisper's batched inference for audio of a minute and more at beam 5 or more, this many 30 s
    # windows at a time (0: sequential decoding): 1.57x faster at 0.4 WER points here
    # (docs/benchmarks/batched.md).
    engine_batch_size: int = 4
    cache_dir: str = ""  # where converted models are kept; "" means ~/.cache/whisperq
    # The synthetic engine (load tests only): wall seconds per audio second, and a failure rate.
    synthetic_seconds_per_audio_second: float = 0.05
    synthetic_failure_rate: float = 0.0
    fault_poison_key: str | None = None
    faults: str = ""  # chaos runs only: a whisperq.faults spec, off when empty
    # Callbacks to private or loopback addresses: refused in AWS, allowed in the twin (tests listen locally).
    allow_private_callbacks: bool = False
    callback_secret: str = ""  # HMAC key that signs callbacks; callbacks are not sent without one
    # The buckets jobs may take an s3:// source from (comma-separated; "none": no bucket). The default is
    # the twin's stand-in for a user's own bucket; on AWS the template passes its SourceBuckets parameter.
    source_buckets: str = "whisperq-local-sources"
    # Audio URLs to private or loopback addresses (and http://): refused, in AWS and in the twin alike;
    # only tests that stand a local web host in for a public one turn this on.
    allow_private_sources: bool = False
    source_fetch_timeout_s: int = 300  # a whole fetch of audio by URL, redirects included
    # The drop folder: an object put under this prefix of the bucket becomes a job by itself ("off": off),
    # owned by this API key id, its transcripts written beside it (or under inbox_output_prefix).
    inbox_prefix: str = "inbox/"
    inbox_owner: str = "default"
    inbox_output_prefix: str = ""
    # The OpenAI-compatible routes wait this long for their job, under API Gateway's 29 s integration
    # timeout, and take audio up to this size (base64 in the event must fit Lambda's 6 MB payload).
    openai_wait_s: float = 25.0
    openai_max_bytes: int = 4 * 1024 * 1024
    # How many of those may wait at once for one API key (beyond: 429 with Retry-After), so that one key
    # cannot hold the API's whole concurrency; on AWS the routes also run in a function of their own.
    openai_waits_per_key: int = 2
    api_concurrency: int = 4  # the twin's API containers at once (AWS: the function's reserved concurrency)
    # The twin's API containers started with it (Lambda's provisioned concurrency): no cold starts
    # until a burst needs more than these; at least 1 (no more than api_concurrency are started). By
    # default one for each core, at most 4: each is a process of about 45 MB idle, 80 MB once it has
    # served, and a machine runs no more requests at once than it has cores.
    api_provisioned: int = field(default_factory=lambda: min(4, os.cpu_count() or 1))
    # The twin's workers run at this scheduling niceness (0-19), below moto, the API and its front:
    # in AWS, Lambda workers never take CPU from S3, SQS, DynamoDB or API Gateway.
    worker_nice: int = 10
    # The twin's moto servers: 1 (S3, SQS, DynamoDB and the rest in one process), or 2 (DynamoDB in a
    # process of its own: 12% more zero-cost jobs a second, 88 MiB more; docs/performance.md).
    moto_processes: int = 1
    queue: QueueConfig = field(default_factory=QueueConfig)
    # Where each value came from ("default", "$VARIABLE", "argument", "file PATH"; queue knobs as
    # "queue.<name>"), as from_env found it: `whisperq config show` reports this, it does not recompute it.
    origins: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **explicit: Any) -> Settings:
        """Build and validate the settings; explicit keyword arguments win over the environment."""
        env = os.environ if environ is None else environ
        types = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        origins: dict[str, str] = {}
        for name, var in ENV_VARS.items():
            fallback = env.get(constants.AWS_DEFAULT_REGION) if name == "region" else None
            if name in explicit and explicit[name] is not None:
                raw, origins[name] = explicit[name], "argument"
            elif env.get(var):
                raw, origins[name] = env[var], f"${var}"
            elif fallback:
                raw, origins[name] = fallback, f"${constants.AWS_DEFAULT_REGION}"
            else:
                origins[name] = "default"
                continue
            values[name] = _convert(name, var, raw, str(types[name]))
        if explicit.get("queue"):
            queue = explicit["queue"]
            queue_origins = {name: "argument" for name in queue.to_dict()}
        else:
            queue, queue_origins = queue_config.load_with_origins(environ=env)
        origins.update({f"queue.{name}": origin for name, origin in queue_origins.items()})
        return cls(**values, queue=queue, origins=origins).validate()

    def validate(self) -> Settings:
        problems = []
        if self.engine not in ENGINES:
            problems.append(f"{constants.ENGINE}={self.engine!r} is not one of {', '.join(ENGINES)}")
        if self.compute_type not in COMPUTE_TYPES:
            problems.append(f"{constants.COMPUTE_TYPE}={self.compute_type!r} is not one of {', '.join(COMPUTE_TYPES)}")
        for name in ("upload_url_expiry_s", "download_url_expiry_s", "max_upload_bytes",
                     "max_audio_duration_s", "job_retention_days"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive")
        if not 0 < self.openai_wait_s <= 28:
            problems.append(f"{constants.OPENAI_WAIT_S} must be above 0 and at most 28 (API Gateway's 29 s timeout)")
        if not 1 <= self.openai_waits_per_key <= 100:
            problems.append("openai_waits_per_key must be 1..100")
        if not 0 < self.openai_max_bytes <= 4_400_000:
            problems.append(f"{constants.OPENAI_MAX_BYTES} must be 1 to 4400000 (Lambda's 6 MB payload, base64)")
        if not 1 <= self.api_concurrency <= 64:
            problems.append(f"{constants.API_CONCURRENCY} must be 1 to 64")
        if not 1 <= self.api_provisioned <= 64:
            problems.append(f"{constants.API_PROVISIONED} must be 1 to 64 (more than {constants.API_CONCURRENCY} "
                            "starts that many)")
        if not 0 <= self.cpu_threads <= 64:
            problems.append(f"{constants.CPU_THREADS} must be 0 (the function's vCPUs) to 64")
        if self.moto_processes not in (1, 2):
            problems.append(f"{constants.MOTO_PROCESSES} must be 1 (one moto server) or 2 (DynamoDB apart)")
        if not 0 <= self.worker_nice <= 19:
            problems.append(f"{constants.WORKER_NICE} must be 0 (the same priority as the rest) to 19 (the lowest)")
        if not 0 <= self.engine_batch_size <= 64:
            problems.append(f"{constants.ENGINE_BATCH_SIZE} must be 0 (sequential) to 64")
        if self.synthetic_seconds_per_audio_second < 0:
            problems.append("synthetic_seconds_per_audio_second must not be negative")
        if not 0.0 <= self.synthetic_failure_rate <= 1.0:
            problems.append("synthetic_failure_rate must be between 0 and 1")
        if self.upload_url_expiry_s > 7 * 24 * 3600 or self.download_url_expiry_s > 7 * 24 * 3600:
            problems.append("pre-signed URLs cannot live longer than 7 days (604800 s)")
        problems.extend(self._source_problems())
        try:
            self.tiers  # noqa: B018 - checked for its error
        except ConfigError as exc:
            problems.append(f"{constants.MODELS}: {exc.message}")
        try:
            from whisperq.faults import FaultSpec

            FaultSpec.parse(self.faults)
        except ValueError as exc:
            problems.append(f"{constants.FAULTS}: {exc}")
        if problems:
            raise ConfigError("invalid settings: " + "; ".join(problems))
        return self

    def _source_problems(self) -> list[str]:
        problems = []
        if not 1 <= self.source_fetch_timeout_s <= 900:
            problems.append(f"{constants.SOURCE_FETCH_TIMEOUT_S} must be 1 to 900 (a Lambda invocation's limit)")
        for name, value in (("inbox_prefix", self.inbox), ("inbox_output_prefix", self.inbox_output_prefix)):
            if value and (not value.endswith("/") or value.startswith("/")
                          or value.startswith(("audio/", "transcripts/", "chunks/", "results/"))):
                problems.append(f"{name} must be a prefix ending in '/' outside audio/, transcripts/, chunks/ "
                                f"and results/ (got {value!r})")
        if self.bucket in self.granted_buckets:
            problems.append(f"{constants.SOURCE_BUCKETS} must not name the deployment's own bucket {self.bucket!r}: it "
                            "holds every key's audio and transcripts")
        if self.inbox and self.inbox_output_prefix.startswith(self.inbox):
            problems.append("inbox_output_prefix must not be inside inbox_prefix (its transcripts would be dropped "
                            "files too)")
        return problems

    @property
    def tiers(self) -> Tiers:
        """The deployment's model tiers, the default model's first."""
        return Tiers.of(self.model, (name.strip() for name in self.models.split(",") if name.strip()))

    @property
    def inbox(self) -> str:
        """The drop folder's prefix, or "" when it is off (inbox_prefix "off": a variable cannot be set empty
        in every deployment tool)."""
        return "" if self.inbox_prefix.strip().lower() in ("", "off", "none") else self.inbox_prefix

    @property
    def granted_buckets(self) -> tuple[str, ...]:
        """The buckets an s3:// source may name (`source_buckets`, parsed)."""
        if self.source_buckets.strip().lower() == "none":
            return ()
        return tuple(name.strip() for name in self.source_buckets.split(",") if name.strip())

    @property
    def resolved_cache_dir(self) -> str:
        return self.cache_dir or os.path.join(os.path.expanduser("~"), ".cache", "whisperq")

    def to_dict(self) -> dict[str, Any]:
        return {name: value for name, value in asdict(self).items() if name != "origins"}


def _as_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    value = str(raw).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(raw)


def _convert(name: str, var: str, raw: Any, type_name: str) -> Any:
    converters: dict[str, tuple[Callable[[Any], Any], str]] = {
        "int": (int, "an integer"), "float": (float, "a number"), "bool": (_as_bool, "true or false")}
    if type_name not in converters:
        return str(raw)
    convert, what = converters[type_name]
    try:
        return convert(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"{var} ({name}) must be {what}, got {raw!r}") from None
