"""Throughput and failure-recovery tunables of the queue, its dead-letter queue and the event source
mapping, in one place. The SAM template and the local twin both take their values from here.

Precedence (highest first): explicit overrides passed in code, WHISPERQ_QUEUE_<FIELD> environment
variables, a JSON file named by WHISPERQ_QUEUE_CONFIG, the defaults below.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from whisperq import constants
from whisperq.core.errors import ConfigError

# Where an AWS deployment starts from something else than the twin: a hundred concurrent functions, not
# the two worker processes of a two-core machine (the template's defaults; a test keeps them equal).
AWS_DEFAULTS: dict[str, int] = {"max_concurrency": 100}


@dataclass(frozen=True)
class QueueConfig:
    """The queue, DLQ and event-source-mapping knobs."""

    # Event source mapping (Lambda's SQS poller, or the local emulator)
    batch_size: int = 1
    max_batching_window_s: int = 0
    max_concurrency: int = 2
    # The transcriber's own time limit; the visibility timeout must be well above it.
    function_timeout_s: int = 900
    # Queue
    visibility_timeout_s: int = 5400
    max_receive_count: int = 3
    retention_s: int = 4 * 24 * 3600
    wait_time_s: int = 20
    # Dead-letter queue: kept longer than the queue so a replay is still possible.
    dlq_retention_s: int = 14 * 24 * 3600
    # Fan-out: audio at least this long is cut at pauses when other workers would wait for work, into a
    # chunk for each of them and one for the worker that cuts it, each its own message on the same queue
    # (0 turns fan-out off); no chunk is shorter than chunk_s.
    fanout_min_duration_s: int = 60
    chunk_s: int = 30

    def validate(self, target: str = "local") -> QueueConfig:
        """Check every value against the limits of SQS and Lambda; `target` is "aws" or "local".

        The local twin accepts a few values AWS refuses (a concurrency of 1, a visibility timeout
        shorter than the function timeout) so that failure recovery can be exercised in seconds."""
        problems: list[str] = []

        def check(ok: bool, message: str) -> None:
            if not ok:
                problems.append(message)

        check(1 <= self.batch_size <= 10_000, "batch_size must be 1..10000")
        check(0 <= self.max_batching_window_s <= 300, "max_batching_window_s must be 0..300")
        check(
            self.batch_size <= 10 or self.max_batching_window_s >= 1,
            "batch_size above 10 needs max_batching_window_s >= 1 (an SQS event source rule)",
        )
        check(0 <= self.visibility_timeout_s <= 43_200, "visibility_timeout_s must be 0..43200")
        check(1 <= self.max_receive_count <= 1000, "max_receive_count must be 1..1000")
        check(60 <= self.retention_s <= 1_209_600, "retention_s must be 60..1209600")
        check(60 <= self.dlq_retention_s <= 1_209_600, "dlq_retention_s must be 60..1209600")
        check(0 <= self.wait_time_s <= 20, "wait_time_s must be 0..20")
        check(1 <= self.function_timeout_s <= 900, "function_timeout_s must be 1..900 (the Lambda maximum)")
        check(self.fanout_min_duration_s >= 0, "fanout_min_duration_s must be 0 (off) or more")
        check(10 <= self.chunk_s <= 3600, "chunk_s must be 10..3600")
        check(
            self.fanout_min_duration_s == 0 or self.fanout_min_duration_s >= 2 * self.chunk_s,
            "fanout_min_duration_s must be 0 (off) or at least twice chunk_s (shorter files would make one chunk)",
        )
        check(
            self.dlq_retention_s >= self.retention_s,
            "dlq_retention_s must be at least retention_s, or dead letters expire before they can be replayed",
        )
        if target == "aws":
            check(2 <= self.max_concurrency <= 1000, "max_concurrency must be 2..1000 (Lambda ScalingConfig)")
            check(
                self.visibility_timeout_s >= 6 * self.function_timeout_s,
                "visibility_timeout_s must be at least 6x function_timeout_s (the AWS guidance for SQS-triggered "
                "functions, so retries of a throttled batch do not redeliver it early)",
            )
        elif target == "local":
            check(1 <= self.max_concurrency <= 64, "max_concurrency must be 1..64 on the local twin")
            check(self.visibility_timeout_s >= 1, "visibility_timeout_s must be at least 1 on the local twin")
        else:
            raise ValueError(f"unknown target {target!r}")
        if problems:
            raise ConfigError("queue_config: " + "; ".join(problems))
        return self

    @classmethod
    def for_target(cls, target: str) -> QueueConfig:
        """The defaults of a target: the local twin's are sized for one machine (a worker per core of
        a laptop), an AWS deployment's (the SAM template's defaults) for Lambda (AWS_DEFAULTS)."""
        return replace(cls(), **AWS_DEFAULTS) if target == "aws" else cls()

    def with_overrides(self, overrides: Mapping[str, Any]) -> QueueConfig:
        known = {f.name: f.type for f in fields(self)}
        values: dict[str, int] = {}
        for name, raw in overrides.items():
            if name not in known:
                raise ConfigError(f"queue_config: unknown setting {name!r}; known: {', '.join(known)}")
            try:
                values[name] = int(raw)
            except (TypeError, ValueError):
                raise ConfigError(f"queue_config: {name} must be an integer, got {raw!r}") from None
        return replace(self, **values)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    # --- rendering ---------------------------------------------------------------------------
    def queue_attributes(self, dlq_arn: str) -> dict[str, str]:
        """SQS attributes of the transcription queue, as CreateQueue/SetQueueAttributes take them."""
        return {
            "VisibilityTimeout": str(self.visibility_timeout_s),
            "MessageRetentionPeriod": str(self.retention_s),
            "ReceiveMessageWaitTimeSeconds": str(self.wait_time_s),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": self.max_receive_count}),
        }

    def dlq_attributes(self) -> dict[str, str]:
        return {"MessageRetentionPeriod": str(self.dlq_retention_s)}

    def sam_parameters(self) -> dict[str, str]:
        """The SAM template's parameters, by parameter name."""
        return {_sam_name(name): str(value) for name, value in asdict(self).items()}


def _sam_name(field_name: str) -> str:
    """batch_size -> BatchSize, max_batching_window_s -> MaxBatchingWindowS."""
    return "".join(part.capitalize() for part in field_name.split("_"))


def load(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
         target: str = "local") -> QueueConfig:
    """Build the queue_config in force (see the module docstring for the order), from the defaults of
    `target` ("local", or "aws" for the template's parameters and the planner)."""
    return load_with_origins(overrides, environ, target)[0]


def load_with_origins(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
                      target: str = "local") -> tuple[QueueConfig, dict[str, str]]:
    """`load`, and where each knob's value came from: "default", "file PATH", "$VARIABLE" or "argument"."""
    env = os.environ if environ is None else environ
    config = QueueConfig.for_target(target)
    origins = {f.name: "default" for f in fields(QueueConfig)}
    path = env.get(constants.QUEUE_CONFIG_FILE)
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                from_file = json.load(handle)
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"queue_config: cannot read {path}: {exc}") from exc
        if not isinstance(from_file, dict):
            raise ConfigError(f"queue_config: {path} must hold a JSON object")
        config = config.with_overrides(from_file)
        origins.update({name: f"file {path}" for name in from_file if name in origins})
    names = {f.name for f in fields(QueueConfig)}
    from_env = {
        name: env[constants.QUEUE_CONFIG_PREFIX + name.upper()]
        for name in names
        if constants.QUEUE_CONFIG_PREFIX + name.upper() in env
    }
    config = config.with_overrides(from_env)
    origins.update({name: f"${constants.QUEUE_CONFIG_PREFIX}{name.upper()}" for name in from_env})
    if overrides:
        config = config.with_overrides(overrides)
        origins.update({name: "argument" for name in overrides if name in origins})
    return config, origins


def to_environ(config: QueueConfig) -> dict[str, str]:
    """The environment variables that reproduce `config` in a child process."""
    return {constants.QUEUE_CONFIG_PREFIX + k.upper(): str(v) for k, v in config.to_dict().items()}
