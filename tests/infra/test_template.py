"""The SAM template: its queue_config defaults, its wiring, and a linter that really checks it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cfnlint.decode import cfn_yaml

from tests.conftest import ROOT
from whisperq.queue_config import QueueConfig

TEMPLATE = ROOT / "infra" / "template.yaml"
CFN_LINT = str(Path(sys.executable).with_name("cfn-lint"))


@pytest.fixture(scope="module")
def template() -> dict:
    return cfn_yaml.load(str(TEMPLATE))


def test_parameter_defaults_when_compared_then_equal_queue_config(template):
    params = template["Parameters"]
    for name, value in QueueConfig().sam_parameters().items():
        assert name in params, f"queue_config.{name} has no template parameter"
        assert str(params[name]["Default"]) == value, f"{name}: template {params[name]['Default']} != {value}"


def test_event_source_mapping_when_read_then_reports_item_failures_and_caps_concurrency(template):
    events = template["Resources"]["TranscriberFunction"]["Properties"]["Events"]["Uploads"]
    assert events["Type"] == "SQS"
    props = events["Properties"]
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert props["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "MaxConcurrency"}
    assert props["BatchSize"] == {"Ref": "BatchSize"}
    assert props["MaximumBatchingWindowInSeconds"] == {"Ref": "MaxBatchingWindowS"}


def test_queue_when_read_then_redrives_to_dlq_with_max_receive_count(template):
    queue = template["Resources"]["TranscriptionQueue"]["Properties"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]}
    assert queue["VisibilityTimeout"] == {"Ref": "VisibilityTimeoutS"}


def test_bucket_when_read_then_notifies_the_queue_for_audio_prefix(template):
    bucket = template["Resources"]["AudioBucket"]["Properties"]
    [notification] = bucket["NotificationConfiguration"]["QueueConfigurations"]
    assert notification["Event"] == "s3:ObjectCreated:*"
    assert notification["Filter"]["S3Key"]["Rules"] == [{"Name": "prefix", "Value": "audio/"}]
    assert bucket["PublicAccessBlockConfiguration"]["BlockPublicPolicy"] is True


def test_cfn_lint_when_template_as_committed_then_clean():
    result = subprocess.run([CFN_LINT, str(TEMPLATE)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


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
