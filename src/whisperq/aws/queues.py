"""SQS: the transcription queue and its dead-letter queue."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from whisperq.aws.clients import Clients
from whisperq.aws.errors import as_core_error
from whisperq.aws.retry import RetryPolicy
from whisperq.core.errors import TransientError


@dataclass(frozen=True)
class Message:
    message_id: str
    receipt_handle: str
    body: str
    attributes: dict[str, str]
    message_attributes: dict[str, Any]
    md5_of_body: str

    @property
    def receive_count(self) -> int:
        return int(self.attributes.get("ApproximateReceiveCount", "1"))


class Queue:
    """One SQS queue, by URL."""

    def __init__(self, clients: Clients, url: str, retry: RetryPolicy | None = None):
        self._clients = clients
        self.url = url
        self.retry = retry or RetryPolicy()

    @classmethod
    def by_name(cls, clients: Clients, name: str, retry: RetryPolicy | None = None) -> Queue:
        try:
            url = clients.sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except (ClientError, BotoCoreError) as exc:
            raise as_core_error(exc, f"finding queue {name}") from exc
        return cls(clients, url, retry)

    @property
    def _sqs(self) -> Any:
        return self._clients.sqs

    @property
    def arn(self) -> str:
        return self.attributes(["QueueArn"])["QueueArn"]

    def attributes(self, names: list[str] | None = None) -> dict[str, str]:
        try:
            found = self._sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=names or ["All"])
            return {str(k): str(v) for k, v in found["Attributes"].items()}
        except (ClientError, BotoCoreError) as exc:
            raise as_core_error(exc, f"reading attributes of {self.url}") from exc

    def depth(self) -> dict[str, int]:
        """Visible, in-flight and delayed message counts (approximate, as SQS reports them)."""
        attrs = self.attributes(
            [
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ]
        )
        return {
            "visible": int(attrs.get("ApproximateNumberOfMessages", 0)),
            "in_flight": int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
            "delayed": int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
        }

    def receive(self, max_messages: int, wait_time_s: int, visibility_timeout_s: int | None = None) -> list[Message]:
        """Up to `max_messages` (at most 10) messages, long-polling up to `wait_time_s`."""
        kwargs: dict[str, Any] = {
            "QueueUrl": self.url,
            "MaxNumberOfMessages": max(1, min(10, max_messages)),
            "WaitTimeSeconds": wait_time_s,
            "MessageSystemAttributeNames": ["All"],
            "MessageAttributeNames": ["All"],
        }
        if visibility_timeout_s is not None:
            kwargs["VisibilityTimeout"] = visibility_timeout_s
        try:
            response = self._sqs.receive_message(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise as_core_error(exc, f"receiving from {self.url}") from exc
        return [
            Message(
                message_id=m["MessageId"],
                receipt_handle=m["ReceiptHandle"],
                body=m.get("Body", ""),
                attributes=dict(m.get("Attributes", {})),
                message_attributes=dict(m.get("MessageAttributes", {})),
                md5_of_body=m.get("MD5OfBody", ""),
            )
            for m in response.get("Messages", [])
        ]

    def delete(self, messages: list[Message]) -> list[str]:
        """Delete messages (in batches of 10); returns the ids SQS refused to delete."""
        return self.retry.call("delete messages", lambda: self._delete(messages))

    def _delete(self, messages: list[Message]) -> list[str]:
        failed: list[str] = []
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            try:
                response = self._sqs.delete_message_batch(
                    QueueUrl=self.url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m.receipt_handle} for i, m in enumerate(chunk)],
                )
            except (ClientError, BotoCoreError) as exc:
                raise as_core_error(exc, f"deleting from {self.url}") from exc
            failed.extend(chunk[int(f["Id"])].message_id for f in response.get("Failed", []))
        return failed

    def change_visibility(self, message: Message, timeout_s: int) -> None:
        self.change_visibility_by_handle(message.receipt_handle, timeout_s)

    def change_visibility_by_handle(self, receipt_handle: str, timeout_s: int) -> None:
        """Hide a received message for `timeout_s` more seconds (0: give it back now)."""

        def once() -> None:
            try:
                self._sqs.change_message_visibility(
                    QueueUrl=self.url, ReceiptHandle=receipt_handle, VisibilityTimeout=timeout_s
                )
            except (ClientError, BotoCoreError) as exc:
                raise as_core_error(exc, f"changing visibility in {self.url}") from exc

        self.retry.call("change visibility", once)

    @classmethod
    def by_arn(cls, clients: Clients, arn: str, retry: RetryPolicy | None = None) -> Queue:
        """The queue an event source ARN (arn:aws:sqs:REGION:ACCOUNT:NAME) names."""
        parts = arn.split(":")
        if len(parts) != 6 or parts[2] != "sqs":
            raise ValueError(f"not an SQS queue ARN: {arn!r}")
        try:
            url = clients.sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"]
        except (ClientError, BotoCoreError) as exc:
            raise as_core_error(exc, f"finding queue {arn}") from exc
        return cls(clients, url, retry)

    def send(self, body: str, attributes: dict[str, Any] | None = None) -> str:
        try:
            response = self._sqs.send_message(QueueUrl=self.url, MessageBody=body, MessageAttributes=attributes or {})
        except (ClientError, BotoCoreError) as exc:
            raise as_core_error(exc, f"sending to {self.url}") from exc
        return str(response["MessageId"])

    def send_batch(self, bodies: list[str]) -> None:
        """Send messages, ten to a call; what SQS refuses (or a retryable error) is sent again."""
        for start in range(0, len(bodies), 10):
            pending = dict(enumerate(bodies[start : start + 10]))

            def once(pending: dict[int, str] = pending) -> None:
                try:
                    response = self._sqs.send_message_batch(
                        QueueUrl=self.url, Entries=[{"Id": str(i), "MessageBody": b} for i, b in pending.items()])
                except (ClientError, BotoCoreError) as exc:
                    raise as_core_error(exc, f"sending to {self.url}") from exc
                for ok in response.get("Successful", []):
                    pending.pop(int(ok["Id"]), None)
                if pending:
                    codes = {f.get("Code", "") for f in response.get("Failed", [])}
                    raise TransientError(f"SQS refused {len(pending)} message(s) of a batch: {', '.join(codes)}")

            self.retry.call("send messages", once)
