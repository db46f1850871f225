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


def test_service_lookup_when_patched_then_same_backend_as_stock_and_searched_once_per_host():
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    moto_patches.apply()
    calls = []

    def stock(self, host):
        calls.append(host)
        return f"backend-of-{host}"

    remembered = moto_patches._remembered_backends(stock)
    dispatcher = DomainDispatcherApplication(create_app=lambda service: None)
    hosts = ["sqs.us-east-1.amazonaws.com", "dynamodb", None, "sqs.us-east-1.amazonaws.com", "dynamodb", None]
    assert [remembered(dispatcher, h) for h in hosts] == [stock(dispatcher, h) for h in hosts]
    assert calls.count("sqs.us-east-1.amazonaws.com") == 3  # once remembered, twice by stock above
    # The patched method answers as moto's own search for the hosts the twin's clients use.
    original = DomainDispatcherApplication.get_backend_for_host.__wrapped__
    for host in ("sqs.us-east-1.amazonaws.com", "s3.us-east-1.amazonaws.com", "dynamodb", "xray", "moto_api", None):
        assert dispatcher.get_backend_for_host(host) == original(dispatcher, host)


def test_queue_attributes_when_patched_then_same_answer_as_stock_for_every_request():
    import pytest
    from moto.sqs.exceptions import InvalidAttributeName
    from moto.sqs.models import SQSBackend

    moto_patches.apply()
    stock = SQSBackend.get_queue_attributes.__wrapped__  # moto's own, kept by the patch
    backend = SQSBackend("us-east-1", "123456789012")
    backend.create_queue("q", VisibilityTimeout="45", DelaySeconds="0")
    for index in range(5):
        backend.send_message("q", f"m{index}")
    backend.send_message("q", "later", delay_seconds=60)
    backend.receive_message("q", 2, wait_seconds_timeout=0, visibility_timeout=30)
    asks = [["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
             "ApproximateNumberOfMessagesDelayed"], ["All"], ["VisibilityTimeout", "QueueArn"], [],
            ["ApproximateNumberOfMessages", "All"]]
    answers = [moto_patches._queue_attributes(backend, "q", names) for names in asks]
    assert answers[0] == {"ApproximateNumberOfMessages": 3, "ApproximateNumberOfMessagesNotVisible": 2,
                          "ApproximateNumberOfMessagesDelayed": 1}
    assert answers[1]["QueueArn"].endswith(":q") and answers[3] == {}
    assert answers[4] == answers[1]
    assert answers == [stock(backend, "q", names) for names in asks]
    with pytest.raises(InvalidAttributeName):
        moto_patches._queue_attributes(backend, "q", ["NoSuchAttribute"])


def test_receipt_handle_when_message_received_again_then_the_old_one_neither_deletes_nor_extends_it():
    """As in SQS: a stale receipt handle's delete succeeds and deletes nothing; its visibility change fails."""
    import pytest
    from moto.sqs.exceptions import InvalidParameterValue, ReceiptHandleIsInvalid
    from moto.sqs.models import SQSBackend

    moto_patches.apply()
    backend = SQSBackend("us-east-1", "123456789012")
    backend.create_queue("q")
    backend.send_message("q", "work")
    [first] = backend.receive_message("q", 1, wait_seconds_timeout=0, visibility_timeout=0)
    stale = first.receipt_handle
    [again] = backend.receive_message("q", 1, wait_seconds_timeout=0, visibility_timeout=30)
    assert again.receipt_handle != stale
    backend.delete_message("q", stale)  # succeeds ...
    assert [m.body for m in backend.get_queue("q")._messages] == ["work"]  # ... and deletes nothing
    with pytest.raises(InvalidParameterValue, match="expired"):
        backend.change_message_visibility("q", stale, 60)
    backend.change_message_visibility("q", again.receipt_handle, 60)  # the latest one works
    backend.delete_message("q", again.receipt_handle)
    assert backend.get_queue("q")._messages == []
    backend.delete_message("q", again.receipt_handle)  # deleting again is fine, as in SQS
    with pytest.raises(ReceiptHandleIsInvalid):
        backend.delete_message("q", "never-issued")
