from whisperq.aws.queues import Message
from whisperq.local.esm import failed_ids, lambda_record

BATCH = [
    Message("m1", "r1", "{}", {"ApproximateReceiveCount": "2", "SentTimestamp": "1764034800000", "Extra": "x"},
            {"k": {"StringValue": "v", "DataType": "String"}}, "md5"),
    Message("m2", "r2", "{}", {"ApproximateReceiveCount": "1"}, {}, "md5"),
]


def test_lambda_record_when_built_then_has_lambda_sqs_shape():
    record = lambda_record(BATCH[0], "arn:aws:sqs:us-east-1:123456789012:q", "us-east-1")
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"].endswith(":q")
    assert record["attributes"] == {"ApproximateReceiveCount": "2", "SentTimestamp": "1764034800000"}
    assert record["messageAttributes"]["k"]["stringValue"] == "v"
    assert record["messageAttributes"]["k"]["dataType"] == "String"
    assert record["receiptHandle"] == "r1" and record["messageId"] == "m1"


def test_failed_ids_when_partial_failure_then_only_those():
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": "m2"}]}, BATCH) == {"m2"}


def test_failed_ids_when_no_failures_then_none():
    assert failed_ids({"batchItemFailures": []}, BATCH) == set()
    assert failed_ids(None, BATCH) == set()


def test_failed_ids_when_identifier_unknown_or_empty_then_whole_batch_as_lambda_does():
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": "nope"}]}, BATCH) == {"m1", "m2"}
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": ""}]}, BATCH) == {"m1", "m2"}
    assert failed_ids("garbage", BATCH) == {"m1", "m2"}
