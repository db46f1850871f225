"""The S3 bucket: pre-signed URLs, audio downloads and transcript uploads."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import BotoCoreError, ClientError

from whisperq.aws.clients import Clients
from whisperq.aws.errors import as_core_error, error_code
from whisperq.aws.retry import RetryPolicy
from whisperq.core.errors import PermanentJobError
from whisperq.core.sources import SourceRefused

# Objects above this are copied in parts (UploadPartCopy, several at once; CopyObject takes 5 GB at most).
MULTIPART_COPY_BYTES = 256 * 1024 * 1024
_DENIED = ("403", "AccessDenied", "AllAccessDisabled", "NoSuchBucket", "PermanentRedirect", "301")


class ObjectUnreadable(SourceRefused):
    """The object's bucket does not exist or does not let this deployment read it."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size_bytes: int
    content_type: str
    last_modified_iso: str
    etag: str = ""


class Blobs:
    """One bucket's objects."""

    def __init__(self, clients: Clients, bucket: str, retry: RetryPolicy | None = None, foreign: bool = False):
        self._clients = clients
        self.bucket = bucket
        self.retry = retry or RetryPolicy()
        # A bucket that is not the deployment's (a granted source): a refusal there is the caller's to fix.
        self.foreign = foreign

    @property
    def _s3(self) -> Any:
        return self._clients.s3

    def other(self, bucket: str) -> Blobs:
        """Another bucket's objects, on the same clients (a source bucket the deployment was granted)."""
        return Blobs(self._clients, bucket, self.retry, foreign=True)

    def presign_put(self, key: str, content_type: str, expires_in_s: int, content_length: int) -> str:
        """A URL the client PUTs the object to; it must send the same Content-Type and Content-Length
        (both signed: S3 refuses a body of another size)."""
        return str(self._s3.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type, "ContentLength": content_length},
            ExpiresIn=expires_in_s,
            HttpMethod="PUT",
        ))

    def presign_post(self, key: str, content_type: str, max_bytes: int, expires_in_s: int) -> dict[str, Any]:
        """A form upload whose policy S3 enforces: this key, this content type, 1..max_bytes bytes."""
        form: dict[str, Any] = self._s3.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
            ExpiresIn=expires_in_s,
        )
        return form

    def delete(self, keys: list[str]) -> None:
        """Delete objects (missing ones are fine)."""
        for start in range(0, len(keys), 1000):
            chunk = keys[start : start + 1000]

            def once(chunk: list[str] = chunk) -> None:
                try:
                    self._s3.delete_objects(
                        Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
                    )
                except (ClientError, BotoCoreError) as exc:
                    raise as_core_error(exc, f"deleting from s3://{self.bucket}") from exc

            self.retry.call("delete objects", once)

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object under `prefix`."""

        def keys() -> list[str]:
            try:
                pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
                return [item["Key"] for page in pages for item in page.get("Contents", [])]
            except (ClientError, BotoCoreError) as exc:
                raise as_core_error(exc, f"listing s3://{self.bucket}/{prefix}") from exc

        self.delete(self.retry.call("list objects", keys))

    def presign_get(self, key: str, expires_in_s: int, download_name: str | None = None) -> str:
        """A URL to download one object for `expires_in_s` seconds."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if download_name:
            params["ResponseContentDisposition"] = f'attachment; filename="{download_name}"'
        return str(self._s3.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in_s))

    def head(self, key: str) -> ObjectInfo | None:
        """The object's size and type, or None when it does not exist."""
        return self.retry.call("read object", lambda: self._head(key))

    def _head(self, key: str) -> ObjectInfo | None:
        try:
            response = self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            if self.foreign and error_code(exc) in _DENIED:
                raise ObjectUnreadable(f"s3://{self.bucket}/{key} cannot be read by this deployment "
                                       f"({error_code(exc)}): is the bucket granted to it, and in its region?") from exc
            raise as_core_error(exc, f"reading s3://{self.bucket}/{key}") from exc
        except BotoCoreError as exc:
            raise as_core_error(exc, f"reading s3://{self.bucket}/{key}") from exc
        return ObjectInfo(
            key=key,
            size_bytes=int(response.get("ContentLength", 0)),
            content_type=str(response.get("ContentType", "")),
            last_modified_iso=response["LastModified"].isoformat() if "LastModified" in response else "",
            etag=str(response.get("ETag", "")).strip('"'),
        )

    def copy_in(self, source_bucket: str, source_key: str, key: str, content_type: str,
                if_etag: str | None = None) -> None:
        """Copy an object into this bucket server-side (CopyObject, or UploadPartCopy in parts for a large
        one): no byte of it passes through this process. Stored with `content_type` and no tags; with
        `if_etag`, only while the object is still the one that was checked."""
        extra = {"ContentType": content_type, "MetadataDirective": "REPLACE", "TaggingDirective": "REPLACE",
                 **({"CopySourceIfMatch": f'"{if_etag}"'} if if_etag else {})}

        def once() -> None:
            try:
                self._s3.copy({"Bucket": source_bucket, "Key": source_key}, self.bucket, key, ExtraArgs=extra,
                              Config=TransferConfig(multipart_threshold=MULTIPART_COPY_BYTES,
                                                    multipart_chunksize=MULTIPART_COPY_BYTES // 4))
            except ClientError as exc:
                if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                    raise PermanentJobError(f"s3://{source_bucket}/{source_key} no longer exists") from exc
                if error_code(exc) in ("412", "PreconditionFailed"):
                    raise PermanentJobError(f"s3://{source_bucket}/{source_key} changed while it was being copied; "
                                            "try again") from exc
                raise as_core_error(exc, f"copying s3://{source_bucket}/{source_key} to s3://{self.bucket}/{key}") \
                    from exc
            except BotoCoreError as exc:
                raise as_core_error(exc, f"copying s3://{source_bucket}/{source_key}") from exc

        self.retry.call("copy object", once)

    def upload_file(self, path: str, key: str, content_type: str) -> None:
        """Write a local file to an object (in parts when it is large)."""

        def once() -> None:
            try:
                self._s3.upload_file(path, self.bucket, key, ExtraArgs={"ContentType": content_type})
            except (ClientError, BotoCoreError) as exc:
                raise as_core_error(exc, f"writing s3://{self.bucket}/{key}") from exc

        self.retry.call("write object", once)

    def keep_versions(self) -> None:
        """Turn versioning on: every write of every object is kept (a chaos run compares them)."""
        self._s3.put_bucket_versioning(Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"})

    def versions_under(self, prefix: str) -> Iterator[tuple[str, str, bool]]:
        """(key, ETag, is the current version) of every version of every object under `prefix`."""
        for page in self._s3.get_paginator("list_object_versions").paginate(Bucket=self.bucket, Prefix=prefix):
            for version in page.get("Versions", []):
                yield str(version["Key"]), str(version["ETag"]), bool(version.get("IsLatest"))

    def list_under(self, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under `prefix`, a page (1,000) at a time, in key order."""
        pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    yield ObjectInfo(item["Key"], int(item.get("Size", 0)), "",
                                     item["LastModified"].isoformat() if "LastModified" in item else "",
                                     str(item.get("ETag", "")).strip('"'))
        except ClientError as exc:
            if error_code(exc) in _DENIED:
                raise ObjectUnreadable(f"s3://{self.bucket}/{prefix} cannot be listed with these credentials "
                                       f"({error_code(exc)})") from exc
            raise as_core_error(exc, f"listing s3://{self.bucket}/{prefix}") from exc
        except BotoCoreError as exc:
            raise as_core_error(exc, f"listing s3://{self.bucket}/{prefix}") from exc

    def download(self, key: str, path: str) -> None:
        """Copy an object to a local file."""
        return self.retry.call("download object", lambda: self._download(key, path))

    def _download(self, key: str, path: str) -> None:
        try:
            self._s3.download_file(self.bucket, key, path)
        except ClientError as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                raise PermanentJobError(
                    f"the uploaded audio s3://{self.bucket}/{key} no longer exists (deleted after upload?)"
                ) from exc
            raise as_core_error(exc, f"downloading s3://{self.bucket}/{key}") from exc
        except BotoCoreError as exc:
            raise as_core_error(exc, f"downloading s3://{self.bucket}/{key}") from exc

    def put_text(self, key: str, text: str, content_type: str) -> None:
        """Write a text object (a transcript)."""
        return self.retry.call("write object", lambda: self._put_text(key, text, content_type))

    def _put_text(self, key: str, text: str, content_type: str) -> None:
        try:
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=text.encode("utf-8"), ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            raise as_core_error(exc, f"writing s3://{self.bucket}/{key}") from exc

    def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        """Write an object straight to the bucket (load tests that skip the API)."""

        def once() -> None:
            try:
                self._s3.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
            except (ClientError, BotoCoreError) as exc:
                raise as_core_error(exc, f"writing s3://{self.bucket}/{key}") from exc

        self.retry.call("write object", once)

    def get_text(self, key: str) -> str:
        return self.retry.call("read object", lambda: self._get_text(key))

    def _get_text(self, key: str) -> str:
        try:
            response = self._s3.get_object(Bucket=self.bucket, Key=key)
            return str(response["Body"].read().decode("utf-8"))
        except (ClientError, BotoCoreError) as exc:
            raise as_core_error(exc, f"reading s3://{self.bucket}/{key}") from exc
