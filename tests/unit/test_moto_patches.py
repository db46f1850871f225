"""The moto patches: pinned to one version, and the same answers as the code they replace."""

import time

import moto
from moto.core.utils import unix_time as stock_unix_time
from moto.core.utils import unix_time_millis as stock_unix_time_millis

from whisperq.local import moto_patches


def test_patches_when_applied_then_only_on_the_pinned_version():
    message = moto_patches.apply()
    assert moto.__version__ == moto_patches.PATCHED_VERSION, "moto changed: re-check the patches, then re-pin"
    assert "applied" in message and moto_patches.is_applied()


def test_clock_when_patched_then_same_epoch_seconds_as_moto():
    from moto.sqs import models

    moto_patches.apply()
    assert abs(models.unix_time() - stock_unix_time()) < 0.05
    assert abs(models.unix_time_millis() - stock_unix_time_millis()) < 50
    assert abs(models.unix_time() - time.time()) < 0.05


def test_retention_check_when_patched_then_same_verdict_as_stock():
    from moto.sqs.models import SQSBackend

    moto_patches.apply()
    backend = SQSBackend("us-east-1", "123456789012")
    backend.create_queue("q", MessageRetentionPeriod="60")
    fresh = backend.send_message("q", "fresh")
    old = backend.send_message("q", "old")
    old.sent_timestamp = int((time.time() - 120) * 1000)
    patched = moto_patches._retention_check
    assert patched(backend, "q", fresh) is True and patched(backend, "q", old) is False


def test_dynamodb_when_patched_then_every_write_and_read_holds_the_lock_even_with_sqs_patches_off(monkeypatch):
    from moto.dynamodb.models import DynamoDBBackend

    monkeypatch.setenv("WHISPERQ_MOTO_PATCHES", "0")
    assert "DynamoDB writes made atomic" in moto_patches.apply()
    for name in ("put_item", "update_item", "delete_item", "transact_write_items", "get_item"):
        assert getattr(getattr(DynamoDBBackend, name), "whisperq_atomic", False), name
