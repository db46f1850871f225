import json
from urllib.parse import unquote_plus

from whisperq.aws.provision import provision


def test_provision_when_done_then_bucket_notifies_queue_on_audio_and_inbox_prefixes(stack):
    config = stack.clients.s3.get_bucket_notification_configuration(Bucket=stack.settings.bucket)
    uploads, inbox = config["QueueConfigurations"]
    for queue_config in (uploads, inbox):
        assert queue_config["QueueArn"] == stack.resources.queue_arn
        assert queue_config["Events"] == ["s3:ObjectCreated:*"]
    assert uploads["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": "audio/tiny-en/"}]
    assert inbox["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": "inbox/"}]


def test_provision_when_the_drop_folder_is_off_then_only_uploads_notify(stack):
    from dataclasses import replace

    from whisperq.aws.provision import provision

    provision(stack.clients, replace(stack.settings, inbox_prefix="off"))
    config = stack.clients.s3.get_bucket_notification_configuration(Bucket=stack.settings.bucket)
    [uploads] = config["QueueConfigurations"]
    assert uploads["Filter"]["Key"]["FilterRules"] == [{"Name": "prefix", "Value": "audio/tiny-en/"}]


def test_provision_when_done_then_queue_redrives_to_dlq_with_queue_config(stack):
    attrs = stack.queue.attributes()
    assert json.loads(attrs["RedrivePolicy"]) == {"deadLetterTargetArn": stack.resources.dlq_arn,
                                                  "maxReceiveCount": 2}
    assert attrs["VisibilityTimeout"] == "30"
    assert stack.dlq.attributes()["MessageRetentionPeriod"] == str(stack.settings.queue.dlq_retention_s)


def test_provision_when_run_twice_then_same_resources(stack):
    again = provision(stack.clients, stack.settings)
    assert again == stack.resources


def test_upload_when_under_audio_then_one_s3_event_with_encoded_key(stack):
    stack.blobs.put_text("audio/tiny-en/x/my café.wav", "RIFF", "audio/wav")
    stack.blobs.put_text("elsewhere/ignored.wav", "RIFF", "audio/wav")
    stack.blobs.put_text("audio/base/x/no-such-tier.wav", "RIFF", "audio/wav")
    [message] = stack.receive_all(1)
    record = json.loads(message.body)["Records"][0]
    assert record["eventName"].startswith("ObjectCreated")
    encoded = record["s3"]["object"]["key"]
    # URL-encoded as in AWS (moto encodes the slashes too, AWS does not): spaces as '+'.
    assert "+" in encoded and " " not in encoded
    assert unquote_plus(encoded) == "audio/tiny-en/x/my café.wav"
    assert stack.receive_all(1, timeout_s=1.5) == []  # nothing for a key outside the tier's audio/tiny-en/


def test_provision_when_two_model_tiers_then_each_prefix_notifies_its_own_queue_and_dlq(stack):
    from dataclasses import replace

    from whisperq.aws.queues import Queue

    settings = replace(stack.settings, models="base")
    resources = provision(stack.clients, settings)
    assert resources.queue_url == stack.resources.queue_url  # the default tier keeps the deployment's queue
    base = resources.tier("base")
    assert base["model"] == "base" and base["queue_url"].endswith(f"/{settings.queue_name}-base")
    assert base["dlq_url"].endswith(f"/{settings.queue_name}-base-dlq")
    queue = Queue(stack.clients, base["queue_url"])
    assert json.loads(queue.attributes()["RedrivePolicy"])["deadLetterTargetArn"] == base["dlq_arn"]
    rules = stack.clients.s3.get_bucket_notification_configuration(Bucket=settings.bucket)["QueueConfigurations"]
    routes = {rule["Filter"]["Key"]["FilterRules"][0]["Value"]: rule["QueueArn"] for rule in rules}
    assert routes == {"audio/tiny-en/": stack.resources.queue_arn, "audio/base/": base["queue_arn"],
                      "inbox/": stack.resources.queue_arn}
    stack.blobs.put_text("audio/base/x/a.wav", "RIFF", "audio/wav")
    bodies = [m.body for _ in range(3) for m in queue.receive(10, 2) if "ObjectCreated" in m.body]
    assert len(bodies) == 1 and "base" in bodies[0]  # after the s3:TestEvent of the notification's set-up
    assert stack.receive_all(1, timeout_s=1.5) == []  # and nothing on the default tier's queue


def test_provision_when_done_then_table_matches_template_index_and_ttl(stack):
    ddb = stack.clients.dynamodb
    table = ddb.describe_table(TableName=stack.settings.table)["Table"]
    indexes = {index["IndexName"]: index for index in table["GlobalSecondaryIndexes"]}
    assert set(indexes) == {"owner-createdAt", "openOwner-createdAt"}
    assert [k["AttributeName"] for k in indexes["owner-createdAt"]["KeySchema"]] == ["owner", "createdAt"]
    assert [k["AttributeName"] for k in indexes["openOwner-createdAt"]["KeySchema"]] == ["openOwner", "createdAt"]
    assert indexes["openOwner-createdAt"]["Projection"]["ProjectionType"] == "INCLUDE"
    ttl = ddb.describe_time_to_live(TableName=stack.settings.table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expiresAt" and ttl["TimeToLiveStatus"] == "ENABLED"


def test_new_job_when_created_then_listed_by_owner_index_with_expiry(stack):
    import time

    created = stack.service.create_upload({"filename": "a.wav", "contentType": "audio/wav", "contentLength": 9})
    items = stack.clients.dynamodb.query(
        TableName=stack.settings.table, IndexName="owner-createdAt",
        KeyConditionExpression="#o = :o", ExpressionAttributeNames={"#o": "owner"},
        ExpressionAttributeValues={":o": {"S": "default"}}, ScanIndexForward=False,
    )["Items"]
    assert [item["jobId"]["S"] for item in items] == [created["jobId"]]
    expires = int(items[0]["expiresAt"]["N"])
    assert 89 * 86400 < expires - time.time() <= 90 * 86400
