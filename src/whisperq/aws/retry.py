"""Retrying what is retryable (throttling, 5xx, timeouts, connection resets): exponential backoff
with full jitter, a bounded number of attempts, then the error goes up. Anything else fails at once.

`sleep` is a parameter so that tests can run the real retry path without waiting."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity

from whisperq.aws.errors import is_retryable

T = TypeVar("T")
E = TypeVar("E", bound=Exception)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    initial_s: float = 0.2
    max_s: float = 5.0
    sleep: Callable[[float], None] = time.sleep
    # Called before each retry with (what, error, attempt number that failed): metrics, logs.
    on_retry: Callable[[str, BaseException, int], None] | None = None

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """Run `fn`, retrying retryable errors; the last error is re-raised unchanged."""

        def before_sleep(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            if self.on_retry and error is not None:
                self.on_retry(what, error, state.attempt_number)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=tenacity.wait_random_exponential(multiplier=self.initial_s, max=self.max_s),
            retry=tenacity.retry_if_exception(is_retryable),
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(fn)




def call_conditional(policy: RetryPolicy, what: str, write: Callable[[], T], refused: type[E],
                     landed: Callable[[E], T | None]) -> T:
    """A conditional write, retried by `policy`. When a retry is refused (`refused` raised) because an
    earlier try landed and only its answer was lost, `landed` recognises that try from the refusal and
    returns its result; None means the refusal is real, and it is raised."""
    attempt = 0

    def once() -> T:
        nonlocal attempt
        attempt += 1
        try:
            return write()
        except refused as exc:
            if attempt > 1:
                result = landed(exc)
                if result is not None:
                    return result
            raise

    return policy.call(what, once)
