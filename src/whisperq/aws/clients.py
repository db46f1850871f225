"""One client factory that knows the endpoint: AWS itself, the local twin, or a test server."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import boto3
from botocore.config import Config

from whisperq.config import Settings


class Clients:
    """Creates boto3 clients lazily, once each, for one endpoint and region.

    Clients are thread-safe; the session that makes them is not, hence the lock."""

    def __init__(self, settings: Settings, credentials: Mapping[str, str] | None = None,
                 customize: Callable[[Any], None] | None = None):
        """`credentials` (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) override boto3's
        usual chain; the local twin passes its own so that a user's real keys never reach it."""
        self.settings = settings
        creds = credentials or {}
        self._session = boto3.session.Session(
            region_name=settings.region,
            aws_access_key_id=creds.get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=creds.get("AWS_SECRET_ACCESS_KEY"),
            aws_session_token=creds.get("AWS_SESSION_TOKEN"),
        )
        self._clients: dict[str, Any] = {}
        self._customize = customize
        self._lock = threading.Lock()

    def _make(self, service: str) -> Any:
        # One retry layer, ours (whisperq.aws.retry): it counts retries and knows what is safe to repeat.
        options: dict[str, Any] = {"retries": {"total_max_attempts": 1, "mode": "standard"}}
        if service == "s3":
            # SigV4 for pre-signed URLs (boto3 would sign us-east-1 with SigV2); path-style
            # addressing for endpoints such as http://127.0.0.1:PORT where a bucket subdomain
            # cannot resolve.
            options["signature_version"] = "s3v4"
            if self.settings.endpoint_url:
                options["s3"] = {"addressing_style": "path"}
        endpoint_url = self.settings.endpoint_url
        if service == "dynamodb" and self.settings.dynamodb_endpoint_url:
            endpoint_url = self.settings.dynamodb_endpoint_url
        return self._session.client(service, endpoint_url=endpoint_url, config=Config(**options))

    def get(self, service: str) -> Any:
        with self._lock:
            if service not in self._clients:
                client = self._make(service)
                if self._customize is not None:
                    self._customize(client)
                self._clients[service] = client
            return self._clients[service]

    @property
    def s3(self) -> Any:
        return self.get("s3")

    @property
    def sqs(self) -> Any:
        return self.get("sqs")

    @property
    def dynamodb(self) -> Any:
        return self.get("dynamodb")


def credentials_found() -> bool:
    """Whether boto3's usual chain (variables, profile, instance role...) finds AWS credentials here."""
    return boto3.Session().get_credentials() is not None

