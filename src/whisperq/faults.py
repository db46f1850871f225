"""Fault injection, for chaos runs on the local twin. Off unless WHISPERQ_FAULTS says otherwise.

One spec, NAME=VALUE pairs separated by commas, read by each part that plays a fault:

- `aws_errors=R`: the transcriber function's AWS calls fail at rate R (botocore event hooks): a
  throttle or a connection error before the call is sent, or a 500 / a read timeout after it was
  carried out (the answer is lost; the caller cannot tell whether it happened).
- `api_errors=R`: the same for the API function's AWS calls (the API retries them; what still fails
  is a 503, which clients send again).
- `crash=R`: a worker process SIGKILLs itself at rate R per job, in the middle of its batch (after
  taking the job, before its transcript is written).
- `slow=R`, `slow_s=S`: at rate R a transcription takes S seconds longer (more than the visibility
  timeout, so only the visibility heartbeat keeps the message from a second worker).
- `kill_every_s=S`: the twin SIGKILLs a random worker every S seconds (Lambda replaces it).
- `poison=R`: the load generator names a share R of its uploads so that they crash the transcriber
  on every attempt (the worker-side poison key fault) until the faults are switched off.
- `corrupt=R`: the load generator uploads a share R of truncated or garbage audio.
- `seed=N`: the random stream, so that a run can be repeated.
"""

from __future__ import annotations

import os
import random
import signal
import threading
from dataclasses import dataclass, fields
from typing import Any

from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

from whisperq.tracing import Log

ENV = "WHISPERQ_FAULTS"
POISON_MARK = "poison-fault"


class FaultSpecError(ValueError):
    """The fault spec does not parse."""


@dataclass(frozen=True)
class FaultSpec:
    aws_errors: float = 0.0
    api_errors: float = 0.0
    crash: float = 0.0
    slow: float = 0.0
    slow_s: float = 0.0
    kill_every_s: float = 0.0
    poison: float = 0.0
    corrupt: float = 0.0
    seed: int | None = None

    @classmethod
    def parse(cls, text: str | None) -> FaultSpec:
        if not text or not text.strip():
            return cls()
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for item in text.split(","):
            name, sep, raw = item.strip().partition("=")
            if not sep or name not in known:
                raise FaultSpecError(f"unknown fault {item.strip()!r}; known: {', '.join(known)} (NAME=VALUE,...)")
            try:
                values[name] = int(raw) if name == "seed" else float(raw)
            except ValueError:
                raise FaultSpecError(f"fault {name} takes a number, got {raw!r}") from None
        spec = cls(**values)
        for name in ("aws_errors", "api_errors", "crash", "slow", "poison", "corrupt"):
            if not 0.0 <= getattr(spec, name) <= 1.0:
                raise FaultSpecError(f"fault {name} is a rate between 0 and 1")
        if spec.slow_s < 0 or spec.kill_every_s < 0:
            raise FaultSpecError("slow_s and kill_every_s cannot be negative")
        return spec

    @property
    def active(self) -> bool:
        return any((self.aws_errors, self.api_errors, self.crash, self.slow and self.slow_s, self.kill_every_s,
                    self.poison, self.corrupt))

    def __str__(self) -> str:
        return ",".join(f"{f.name}={getattr(self, f.name):g}" for f in fields(self)
                        if getattr(self, f.name) not in (0, 0.0, None))


def from_env(environ: Any = None) -> FaultSpec:
    return FaultSpec.parse((environ if environ is not None else os.environ).get(ENV))


class Injector:
    """Plays the function-side faults of one spec, with its own random stream. `aws_error_rate`:
    the rate for this function's AWS calls (the transcriber's aws_errors, the API's api_errors)."""

    def __init__(self, spec: FaultSpec, aws_error_rate: float | None = None):
        self.spec = spec
        self.aws_error_rate = spec.aws_errors if aws_error_rate is None else aws_error_rate
        # Each worker process draws its own stream (seeded runs stay repeatable per worker).
        self._random = random.Random(None if spec.seed is None else spec.seed * 7919 + os.getpid())
        self._lock = threading.Lock()
        self.injected: dict[str, int] = {}

    def _draw(self, rate: float, what: str | None = None) -> bool:
        if rate <= 0:
            return False
        with self._lock:
            hit = self._random.random() < rate
        if hit and what in ("crash", "slow"):
            self._count(what)
        return hit

    # --- transient AWS errors --------------------------------------------------------
    def install_aws_errors(self, client: Any) -> None:
        """Hook the client's calls: before the request is sent (throttle, connection error) or after
        the service answered (a 500 or a timeout in place of the answer: the call did happen)."""
        if self.aws_error_rate <= 0:
            return
        events = client.meta.events
        events.register("before-call.*.*", self._before_call)
        events.register("after-call.*.*", self._after_call)

    def _before_call(self, model: Any, context: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """At the configured rate a call fails: half the time before it is sent, half after."""
        if not self._draw(self.aws_error_rate):
            return
        kind = self._random.random()
        if kind < 0.5 and context is not None:
            context["whisperq_fault_after_kind"] = "timeout" if kind < 0.25 else "500"
            context["whisperq_fault_after"] = True
            self._count("aws-after")
            return
        self._count("aws-before")
        if kind < 0.75:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "injected throttle"},
                               "ResponseMetadata": {"HTTPStatusCode": 400}}, model.name)
        raise EndpointConnectionError(endpoint_url="injected://connection-refused")

    def _after_call(self, model: Any, context: dict[str, Any] | None = None, **kwargs: Any) -> None:
        if not context or not context.pop("whisperq_fault_after", False):
            return
        if context.pop("whisperq_fault_after_kind", "500") == "timeout":
            raise ReadTimeoutError(endpoint_url="injected://read-timeout")
        raise ClientError({"Error": {"Code": "InternalError", "Message": "injected 500, answer lost"},
                           "ResponseMetadata": {"HTTPStatusCode": 500}}, model.name)

    def _count(self, what: str) -> None:
        with self._lock:
            self.injected[what] = self.injected.get(what, 0) + 1

    # --- the worker itself -----------------------------------------------------------
    def maybe_crash(self) -> None:
        """SIGKILL this process at the configured rate: nothing runs after it, as with a real crash."""
        if self._draw(self.spec.crash, "crash"):
            os.kill(os.getpid(), signal.SIGKILL)

    def extra_delay_s(self) -> float:
        return self.spec.slow_s if self._draw(self.spec.slow, "slow") else 0.0


def injector_for(settings_faults: str, function: str, log: Log) -> Injector:
    """The injector of one function ("transcriber" or "api") from the settings' spec, saying so in
    the log when it will inject anything."""
    spec = FaultSpec.parse(settings_faults)
    rate = spec.api_errors if function == "api" else spec.aws_errors
    if (spec.active if function == "transcriber" else rate):
        log.warning("fault injection is on", extra={"faults": str(spec)})
    return Injector(spec, rate)


# Connection errors a fault may raise, for callers that classify them (all are retryable).
INJECTED_CONNECTION_ERRORS = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError)
