"""The SAM template: its queue_config defaults, its wiring and security properties, the transcriber
image, and linters that really check it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cfnlint.decode import cfn_yaml

from tests.conftest import ROOT
from whisperq.aws.jobs_table import OPEN_ATTRIBUTE, OPEN_INDEX
from whisperq.queue_config import QueueConfig

TEMPLATE = ROOT / "infra" / "template.yaml"
CFN_LINT = str(Path(sys.executable).with_name("cfn-lint"))


@pytest.fixture(scope="module")
def template() -> dict:
    return cfn_yaml.load(str(TEMPLATE))


@pytest.fixture(scope="module")
def resources(template) -> dict:
    return template["Resources"]


def taken(item):
    """An item as deployed with its condition true (`!If [Cond, item, AWS::NoValue]`)."""
    return item["Fn::If"][1] if isinstance(item, dict) and set(item) == {"Fn::If"} else item


def default(template, name):
    return template["Parameters"][name]["Default"]


def test_parameter_defaults_when_compared_then_equal_queue_config(template):
    params = template["Parameters"]
    for name, value in QueueConfig.for_target("aws").sam_parameters().items():
        assert name in params, f"queue_config.{name} has no template parameter"
        assert str(params[name]["Default"]) == value, f"{name}: template {params[name]['Default']} != {value}"


def test_event_source_mapping_when_read_then_reports_item_failures_and_caps_concurrency(resources):
    events = resources["TranscriberFunction"]["Properties"]["Events"]["Uploads"]
    assert events["Type"] == "SQS"
    props = events["Properties"]
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "MaxConcurrency"}
    assert props["BatchSize"] == {"Ref": "BatchSize"}
    assert props["MaximumBatchingWindowInSeconds"] == {"Ref": "MaxBatchingWindowS"}


def test_queues_when_read_then_encrypted_redriven_and_dlq_outlives_queue(template, resources):
    queue = resources["TranscriptionQueue"]["Properties"]
    dlq = resources["DeadLetterQueue"]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True and dlq["SqsManagedSseEnabled"] is True
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
                                      "maxReceiveCount": {"Ref": "MaxReceiveCount"}}
    assert queue["VisibilityTimeout"] == {"Ref": "VisibilityTimeoutS"}
    assert dlq["MessageRetentionPeriod"] == {"Ref": "DlqRetentionS"}
    assert default(template, "DlqRetentionS") > default(template, "RetentionS")
    assert default(template, "VisibilityTimeoutS") >= 6 * default(template, "FunctionTimeoutS")
    assert dlq["RedriveAllowPolicy"]["redrivePermission"] == "byQueue"
    assert "${AWS::StackName}-transcription" in str(dlq["RedriveAllowPolicy"]["sourceQueueArns"])


def test_bucket_when_read_then_private_encrypted_tls_only_expiring_and_notifying(resources):
    bucket = resources["AudioBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    notification, second, inbox = map(taken, bucket["NotificationConfiguration"]["QueueConfigurations"])
    assert notification["Event"] == second["Event"] == inbox["Event"] == "s3:ObjectCreated:*"
    # Each tier's uploads (audio/<tier>/): test_tier_names_... evaluates the prefixes.
    assert "audio/${Tier}/" in str(notification["Filter"]["S3Key"]["Rules"])
    # The drop folder, when it is on: its own prefix, to the same queue.
    assert inbox["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": {"Ref": "InboxPrefix"}}]
    assert inbox["Queue"] == notification["Queue"]
    rules = {rule["Prefix"]: rule for rule in bucket["LifecycleConfiguration"]["Rules"]}
    assert rules["audio/"]["ExpirationInDays"] == {"Ref": "AudioRetentionDays"}
    assert rules["transcripts/"]["ExpirationInDays"] == {"Ref": "TranscriptRetentionDays"}
    assert "PUT" in bucket["CorsConfiguration"]["CorsRules"][0]["AllowedMethods"]
    [deny] = resources["AudioBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert resources["AudioBucket"]["DependsOn"] == "TranscriptionQueuePolicy"


def test_table_when_read_then_on_demand_with_ttl_gsi_and_pitr(resources):
    table = resources["JobsTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    owner, open_jobs = table["GlobalSecondaryIndexes"]
    assert owner["IndexName"] == "owner-createdAt"
    assert [k["AttributeName"] for k in owner["KeySchema"]] == ["owner", "createdAt"]
    # The sparse index of open jobs, as the jobs table code and the twin's provisioning name it.
    assert open_jobs["IndexName"] == OPEN_INDEX
    assert [k["AttributeName"] for k in open_jobs["KeySchema"]] == [OPEN_ATTRIBUTE, "createdAt"]
    assert open_jobs["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["status"]}
    assert {"AttributeName": OPEN_ATTRIBUTE, "AttributeType": "S"} in table["AttributeDefinitions"]
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    # The chunks: one item per chunk (job id + index), expiring as jobs do.
    chunks = resources["ChunksTable"]["Properties"]
    assert [(k["AttributeName"], k["KeyType"]) for k in chunks["KeySchema"]] == [("jobId", "HASH"), ("chunk", "RANGE")]
    assert chunks["TimeToLiveSpecification"] == table["TimeToLiveSpecification"]
    assert chunks["BillingMode"] == "PAY_PER_REQUEST"


def test_api_when_read_then_keys_usage_plan_cors_access_logs_and_tracing(resources):
    api = resources["Api"]["Properties"]
    assert api["Auth"]["ApiKeyRequired"] is True
    plan = api["Auth"]["UsagePlan"]
    assert plan["CreateUsagePlan"] == "PER_API"
    assert set(plan["Throttle"]) == {"RateLimit", "BurstLimit"} and plan["Quota"]["Period"] == "DAY"
    assert "x-api-key" in api["Cors"]["AllowHeaders"]
    assert api["AccessLogSetting"]["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogs", "Arn"]}
    assert api["TracingEnabled"] is True


def test_functions_when_read_then_traced_and_least_privilege(template, resources):
    assert template["Globals"]["Function"]["Tracing"] == "Active"
    for name in ("ApiFunction", "TranscriberFunction", "OpenAIAudioFunction"):
        props = resources[name]["Properties"]
        assert "MemorySize" in props and "Timeout" in props
        statements = [taken(st) for policy in props["Policies"] for st in policy["Statement"]]
        for statement in statements:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert not any(action.endswith("*") for action in actions), f"{name}: wildcard action {actions}"
        # Objects under the pipeline's own prefixes only; listing only those prefixes.
        # (and the drop folder's files, and the objects of the source buckets granted by parameter).
        objects = [str(st["Resource"]) for st in statements if "s3:" in str(st["Action"])
                   and st["Action"] != "s3:ListBucket"]
        assert objects and all(any(f"/{prefix}/*" in r for prefix in ("audio", "transcripts", "chunks", "results"))
                               or "/${InboxPrefix}*" in r or "/${InboxOutputPrefix}*" in r or "SourceBuckets" in r
                               for r in objects)
        # Listing: the stack's bucket (S3 answers a missing key 404 only to a role that may list) and the
        # granted source buckets, nothing else.
        for listing in [st for st in statements if st["Action"] == "s3:ListBucket"]:
            assert listing["Resource"] == {"Fn::GetAtt": ["AudioBucket", "Arn"]} \
                or "SourceBuckets" in str(listing["Resource"])
    transcriber = resources["TranscriberFunction"]["Properties"]
    assert transcriber["PackageType"] == "Image" and transcriber["Timeout"] == {"Ref": "FunctionTimeoutS"}
    transcriber_statements = [taken(st) for st in transcriber["Policies"][0]["Statement"]]
    writes = [st for st in transcriber_statements if "s3:PutObject" in str(st["Action"])]
    # Fetched and dropped audio, the drop folder's transcripts beside its files, the transcripts, the chunks
    # of fanned-out jobs and the attempts' transcripts.
    assert [st["Resource"] for st in writes] == [{"Fn::Sub": "${AudioBucket.Arn}/audio/*"},
                                                 {"Fn::Sub": "${AudioBucket.Arn}/${InboxPrefix}*"},
                                                 {"Fn::Sub": "${AudioBucket.Arn}/${InboxOutputPrefix}*"},
                                                 {"Fn::Sub": "${AudioBucket.Arn}/transcripts/*"},
                                                 {"Fn::Sub": "${AudioBucket.Arn}/chunks/*"},
                                                 {"Fn::Sub": "${AudioBucket.Arn}/results/*"}]
    # The API reads the granted source buckets and no other; it queues a URL's fetch on the worker's queue.
    api_statements = {st["Sid"]: st for st in map(taken, resources["ApiFunction"]["Properties"]["Policies"][0]
                                                  ["Statement"])}
    assert api_statements["ReadGrantedSourceObjects"]["Action"] == "s3:GetObject"
    assert "SourceBuckets" in str(api_statements["ReadGrantedSourceObjects"]["Resource"])
    assert api_statements["QueueTheFetchOfAudioByUrl"]["Resource"] == [
        {"Fn::GetAtt": ["TranscriptionQueue", "Arn"]},
        {"Fn::If": ["HasSecondModel", {"Fn::GetAtt": ["SecondModelQueue", "Arn"]}, {"Ref": "AWS::NoValue"}]}]
    sends = [st for st in transcriber_statements if "sqs:SendMessage" in str(st["Action"])]
    # Its own queue (chunk messages) and the callbacks' queue (a final job's callback, for its sender).
    assert [st["Resource"] for st in sends] == [{"Fn::GetAtt": ["TranscriptionQueue", "Arn"]},
                                                {"Fn::GetAtt": ["CallbacksQueue", "Arn"]}]
    rules = {r["Prefix"]: r for r in resources["AudioBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]}
    # What a dead-letter replay resumes from outlives the longest DLQ retention SQS allows (14 days).
    assert rules["chunks/"]["ExpirationInDays"] == rules["results/"]["ExpirationInDays"] == 15
    assert resources["ApiFunction"]["Properties"]["ReservedConcurrentExecutions"] > 0
    # The routes that wait for their job take their own concurrency, never the API's.
    assert resources["OpenAIAudioFunction"]["Properties"]["ReservedConcurrentExecutions"] > 0


def test_alarms_when_read_then_cover_dead_letters_age_errors_and_throttles(resources):
    alarms = {name: r["Properties"] for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert {a["MetricName"] for a in alarms.values()} == {"ApproximateNumberOfMessagesVisible",
                                                          "ApproximateAgeOfOldestMessage", "Errors", "Throttles"}
    # A dead-letter alarm for each tier's DLQ (the second's when there is one).
    for alarm, queue in (("DeadLettersAlarm", "DeadLetterQueue"),
                         ("SecondModelDeadLettersAlarm", "SecondModelDeadLetterQueue")):
        dead = alarms[alarm]
        assert dead["MetricName"] == "ApproximateNumberOfMessagesVisible"
        assert dead["Dimensions"][0]["Value"] == {"Fn::GetAtt": [queue, "QueueName"]}
        assert dead["Threshold"] == 0 and dead["ComparisonOperator"] == "GreaterThanThreshold"


def test_every_checkov_suppression_when_read_then_has_a_reason(resources):
    skips = [skip for r in resources.values() for skip in r.get("Metadata", {}).get("checkov", {}).get("skip", [])]
    assert skips
    assert all(skip["id"].startswith("CKV_") and len(skip.get("comment", "")) > 30 for skip in skips)


def test_image_when_read_then_lambda_base_model_baked_and_handler_importable():
    dockerfile = (ROOT / "infra" / "Dockerfile").read_text(encoding="utf-8")
    assert dockerfile.startswith("#") and "FROM public.ecr.aws/lambda/python:3.11" in dockerfile
    # The models are fetched at build time (the build fails if one cannot be), never at run time.
    assert "whisperq models fetch ${WHISPERQ_MODELS}" in dockerfile
    assert 'ARG WHISPERQ_MODELS="tiny.en base"' in dockerfile
    assert "HF_HUB_OFFLINE=1" in dockerfile
    assert "resolve_ct2_model('tiny.en'" in dockerfile  # the build fails if the weights are not in the image
    # The speaker encoder's weights: the same wheel as make venv installs, loaded once at build time.
    [pin] = [line.split(":=")[1].strip() for line in (ROOT / "Makefile").read_text().splitlines()
             if line.startswith("RESEMBLYZER :=")]
    assert f"pip install --no-cache-dir --no-deps {pin}" in dockerfile and "VoiceEncoder()" in dockerfile
    [cmd] = [line for line in dockerfile.splitlines() if line.startswith("CMD")]
    module, _, attribute = cmd.split('"')[1].rpartition(".")
    import importlib

    assert callable(getattr(importlib.import_module(module), attribute))
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert {".venv", ".git", "tests"} <= set(ignored)


def test_infra_lint_when_template_as_committed_then_clean():
    result = subprocess.run(["bash", str(ROOT / "scripts" / "lint_infra.sh")], capture_output=True, text=True,
                            timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failed" in result.stdout


@pytest.mark.parametrize(
    ("good", "bad"),
    [
        ("- ReportBatchItemFailures", "- ReportBatchItemFailure"),
        ("MaximumConcurrency: !Ref MaxConcurrency", "MaximumConcurrency: 1"),
    ],
)
def test_cfn_lint_when_event_source_property_broken_then_fails(tmp_path, good, bad):
    """The pinned cfn-lint + SAM translator catch mistakes inside SQS event properties (newer
    cfn-lint releases do not: see shared FACTS), so the lint step is worth something."""
    text = TEMPLATE.read_text(encoding="utf-8")
    assert good in text
    broken = tmp_path / "template.yaml"
    broken.write_text(text.replace(good, bad), encoding="utf-8")
    result = subprocess.run([CFN_LINT, str(broken)], capture_output=True, text=True, timeout=300)
    assert result.returncode != 0, "cfn-lint accepted a broken event source mapping"


def test_checkov_when_bucket_made_public_then_fails(tmp_path):
    text = TEMPLATE.read_text(encoding="utf-8")
    broken = tmp_path / "template.yaml"
    broken.write_text(text.replace("BlockPublicPolicy: true", "BlockPublicPolicy: false"), encoding="utf-8")
    result = subprocess.run(["bash", str(ROOT / "scripts" / "lint_infra.sh"), str(broken)], capture_output=True,
                            text=True, timeout=600, cwd=ROOT)
    assert result.returncode != 0 and "CKV_AWS_54" in result.stdout


def test_routes_when_compared_then_template_serves_every_openapi_operation_and_only_health_and_page_open(resources):
    from whisperq.api_handler.handler import contract
    from whisperq.local.front import OPEN_ROUTES

    events = [*resources["ApiFunction"]["Properties"]["Events"].values(),
              *resources["OpenAIAudioFunction"]["Properties"]["Events"].values()]
    routed = {(e["Properties"]["Method"].upper(), e["Properties"]["Path"]) for e in events}
    assert len(routed) == len(events)  # each route served by one function
    documented = {(method.upper(), path) for path, ops in contract()["paths"].items() for method in ops}
    assert routed == documented
    open_in_template = {(e["Properties"]["Method"].upper(), e["Properties"]["Path"]) for e in events
                        if e["Properties"].get("Auth", {}).get("ApiKeyRequired") is False}
    assert open_in_template == set(OPEN_ROUTES) == {("GET", "/health"), ("GET", "/"), ("GET", "/app"),
                                                    ("GET", "/app.js")}  # the page asks for the key itself


def test_functions_when_read_then_get_the_fanout_knobs_and_the_concurrency_they_depend_on(template):
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert env["WHISPERQ_QUEUE_FANOUT_MIN_DURATION_S"] == {"Ref": "FanoutMinDurationS"}
    assert env["WHISPERQ_QUEUE_CHUNK_S"] == {"Ref": "ChunkS"}
    assert env["WHISPERQ_QUEUE_MAX_CONCURRENCY"] == {"Ref": "MaxConcurrency"}


def test_api_when_read_then_bearer_keys_reach_the_usage_plan_and_audio_arrives_binary(resources):
    api = resources["Api"]["Properties"]
    assert api["ApiKeySourceType"] == "AUTHORIZER" and api["Auth"]["DefaultAuthorizer"] == "KeyAuthorizer"
    authorizer = api["Auth"]["Authorizers"]["KeyAuthorizer"]
    assert authorizer["FunctionPayloadType"] == "REQUEST"
    assert authorizer["FunctionArn"] == {"Fn::GetAtt": ["AuthorizerFunction", "Arn"]}
    assert authorizer["Identity"]["ReauthorizeEvery"] == 0  # no identity source: never cached
    assert resources["AuthorizerFunction"]["Properties"]["Handler"] == "whisperq.api_handler.authorizer.handler"
    assert api["BinaryMediaTypes"] == ["multipart~1form-data"]
    responses = api["GatewayResponses"]
    assert responses["UNAUTHORIZED"]["StatusCode"] == 403  # no key at all: as API Gateway's missing key
    too_large = responses["REQUEST_TOO_LARGE"]
    assert too_large["StatusCode"] == 413 and "POST /jobs" in too_large["ResponseTemplates"]["application/json"]
    assert "Authorization" in api["Cors"]["AllowHeaders"]
    health = resources["ApiFunction"]["Properties"]["Events"]["Health"]["Properties"]["Auth"]
    assert health == {"ApiKeyRequired": False, "Authorizer": "NONE"}


def test_planner_memory_default_when_compared_then_the_templates(template):
    from whisperq.cli.plan import TEMPLATE_MEMORY_MB

    assert default(template, "TranscriberMemoryMb") == TEMPLATE_MEMORY_MB


def _evaluate(expression, parameters):
    """The value of the intrinsic functions a tier id is built with (Ref, Fn::Join, Fn::Split, Fn::Sub)."""
    if isinstance(expression, str):
        return expression
    if isinstance(expression, list):
        return [_evaluate(item, parameters) for item in expression]
    [(name, args)] = expression.items()
    if name == "Ref":
        return parameters[args]
    if name == "Fn::Join":
        return args[0].join(_evaluate(args[1], parameters))
    if name == "Fn::Split":
        return _evaluate(args[1], parameters).split(args[0])
    if name == "Fn::Sub":
        text, variables = (args, {}) if isinstance(args, str) else args
        values = {**parameters, **{k: _evaluate(v, parameters) for k, v in variables.items()}}
        for key, value in values.items():
            text = text.replace("${" + key + "}", value)
        return text
    raise AssertionError(f"not evaluated here: {name}")


@pytest.mark.parametrize("model", ["tiny.en", "large-v3-turbo", "Systran/faster-whisper-large-v3", "distil_v3"])
def test_tier_names_when_evaluated_then_the_ones_the_service_derives(resources, model):
    """The template turns a model's name into its tier's upload prefix and queue names as core/tiers.py
    does: an upload under audio/<tier>/ reaches the queue of the function that runs its model."""
    from whisperq.core.tiers import Tier

    stack = "stack"
    parameters = {"WhisperModel": model, "SecondModel": model, "AWS::StackName": stack}
    rules = resources["AudioBucket"]["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    default_prefix = rules[0]["Filter"]["S3Key"]["Rules"][0]["Value"]
    second = taken(rules[1])
    assert rules[0]["Queue"] == {"Fn::GetAtt": ["TranscriptionQueue", "Arn"]}
    assert second["Queue"] == {"Fn::GetAtt": ["SecondModelQueue", "Arn"]}
    assert _evaluate(default_prefix, parameters) == Tier(model, default=True).audio_prefix
    assert _evaluate(second["Filter"]["S3Key"]["Rules"][0]["Value"], parameters) == Tier(model).audio_prefix
    tier = Tier(model)
    assert _evaluate(resources["SecondModelQueue"]["Properties"]["QueueName"], parameters) == \
        tier.queue_name(f"{stack}-transcription")
    assert _evaluate(resources["SecondModelDeadLetterQueue"]["Properties"]["QueueName"], parameters) == \
        tier.dlq_name(f"{stack}-transcription", f"{stack}-transcription-dlq")


def test_second_model_tier_when_read_then_its_own_queue_dlq_function_memory_and_cap(template, resources):
    assert default(template, "SecondModel") == ""  # one tier unless asked
    for name in ("SecondModelQueue", "SecondModelDeadLetterQueue", "SecondModelTranscriberFunction"):
        assert resources[name]["Condition"] == "HasSecondModel"
    queue = resources["SecondModelQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["SecondModelDeadLetterQueue", "Arn"]}
    function = resources["SecondModelTranscriberFunction"]["Properties"]
    assert function["MemorySize"] == {"Ref": "SecondModelMemoryMb"}
    assert function["Timeout"] == {"Ref": "SecondModelTimeoutS"}
    env = function["Environment"]["Variables"]
    assert env["WHISPERQ_MODEL"] == {"Ref": "SecondModel"}
    assert env["WHISPERQ_QUEUE_NAME"] == {"Fn::GetAtt": ["SecondModelQueue", "QueueName"]}
    assert env["WHISPERQ_DLQ_NAME"] == {"Fn::GetAtt": ["SecondModelDeadLetterQueue", "QueueName"]}
    # It decides how to cut a file by its own timeout and concurrency cap, not the default tier's.
    assert env["WHISPERQ_QUEUE_FUNCTION_TIMEOUT_S"] == {"Ref": "SecondModelTimeoutS"}
    assert env["WHISPERQ_QUEUE_MAX_CONCURRENCY"] == {"Ref": "SecondModelMaxConcurrency"}
    # Model names the template can turn into the tier ids core derives (only . and / are replaced).
    for name in ("WhisperModel", "SecondModel"):
        assert "+" not in template["Parameters"][name]["AllowedPattern"]
    assert template["Rules"]["SecondModelIsAnotherModel"]["Assertions"][0]["Assert"] == \
        {"Fn::Not": [{"Fn::Equals": [{"Ref": "SecondModel"}, {"Ref": "WhisperModel"}]}]}
    assert resources["SecondModelDeadLettersAlarm"]["Condition"] == "HasSecondModel"
    uploads = function["Events"]["Uploads"]["Properties"]
    assert uploads["Queue"] == {"Fn::GetAtt": ["SecondModelQueue", "Arn"]}
    assert uploads["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "SecondModelMaxConcurrency"}
    assert uploads["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # The API knows both models (an unknown one is a 400 that lists them).
    assert template["Globals"]["Function"]["Environment"]["Variables"]["WHISPERQ_MODELS"] == \
        {"Fn::If": ["HasSecondModel", {"Ref": "SecondModel"}, ""]}
    # The planner's memory for large-v3-turbo is the second tier's default.
    from whisperq.planner.models import profiles

    assert default(template, "SecondModelMemoryMb") == profiles(ROOT / "docs")["large-v3-turbo"].function_memory_mb


def test_infra_lint_when_two_tiers_deployed_then_clean(tmp_path):
    """cfn-lint and checkov over the template with its second tier on (SecondModel: large-v3-turbo)."""
    text = TEMPLATE.read_text(encoding="utf-8")
    marker = 'SecondModel:\n    Type: String\n    Default: ""'
    assert marker in text
    two = tmp_path / "template.yaml"
    two.write_text(text.replace(marker, 'SecondModel:\n    Type: String\n    Default: large-v3-turbo'),
                   encoding="utf-8")
    result = subprocess.run(["bash", str(ROOT / "scripts" / "lint_infra.sh"), str(two)], capture_output=True,
                            text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failed" in result.stdout
