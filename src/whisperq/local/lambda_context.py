"""A Lambda context object with the fields handlers and Powertools read."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

from whisperq.core.capacity import FUNCTION_MEMORY_MB


@dataclass
class LocalLambdaContext:
    function_name: str
    timeout_s: int = 900
    memory_limit_in_mb: int = FUNCTION_MEMORY_MB
    region: str = "us-east-1"
    account_id: str = "123456789012"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_s
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))
