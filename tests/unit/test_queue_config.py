import json

import pytest

from whisperq import queue_config
from whisperq.core.errors import ConfigError
from whisperq.queue_config import QueueConfig


def test_defaults_when_validated_then_fit_aws_and_the_twin():
    QueueConfig().validate("aws")
    QueueConfig().validate("local")


@pytest.mark.parametrize(
    ("overrides", "target", "fragment"),
    [
        ({"batch_size": 0}, "local", "batch_size"),
        ({"batch_size": 11}, "aws", "max_batching_window_s >= 1"),
        ({"max_concurrency": 1}, "aws", "max_concurrency must be 2..1000"),
        ({"visibility_timeout_s": 60, "function_timeout_s": 120}, "aws", "at least 6x function_timeout_s"),
        ({"visibility_timeout_s": 5399, "function_timeout_s": 900}, "aws", "at least 6x function_timeout_s"),
        ({"max_receive_count": 0}, "local", "max_receive_count"),
        ({"wait_time_s": 21}, "local", "wait_time_s"),
        ({"dlq_retention_s": 120, "retention_s": 600}, "local", "dead letters expire"),
    ],
)
def test_validate_when_out_of_range_then_config_error_names_it(overrides, target, fragment):
    with pytest.raises(ConfigError) as caught:
        QueueConfig().with_overrides(overrides).validate(target)
    assert fragment in str(caught.value)


def test_local_target_when_short_timeouts_then_accepted():
    QueueConfig(max_concurrency=1, visibility_timeout_s=2, function_timeout_s=900).validate("local")


def test_load_when_env_and_file_then_env_wins_over_file(tmp_path):
    path = tmp_path / "qc.json"
    path.write_text(json.dumps({"batch_size": 5, "max_receive_count": 7}))
    config = queue_config.load(
        environ={"WHISPERQ_QUEUE_CONFIG": str(path), "WHISPERQ_QUEUE_BATCH_SIZE": "8"}
    )
    assert config.batch_size == 8 and config.max_receive_count == 7


def test_load_when_explicit_then_wins_over_env():
    config = queue_config.load({"batch_size": 3}, environ={"WHISPERQ_QUEUE_BATCH_SIZE": "8"})
    assert config.batch_size == 3


@pytest.mark.parametrize("overrides", [{"batch_sise": 3}, {"batch_size": "many"}])
def test_with_overrides_when_unknown_or_not_integer_then_config_error(overrides):
    with pytest.raises(ConfigError):
        QueueConfig().with_overrides(overrides)


def test_queue_attributes_when_rendered_then_carry_redrive_policy():
    attrs = QueueConfig(max_receive_count=4).queue_attributes("arn:aws:sqs:us-east-1:1:dlq")
    assert json.loads(attrs["RedrivePolicy"]) == {"deadLetterTargetArn": "arn:aws:sqs:us-east-1:1:dlq",
                                                  "maxReceiveCount": 4}
    assert attrs["VisibilityTimeout"] == "5400" and attrs["ReceiveMessageWaitTimeSeconds"] == "20"


def test_to_environ_when_loaded_back_then_equal():
    config = QueueConfig(batch_size=4, max_concurrency=3)
    assert queue_config.load(environ=queue_config.to_environ(config)) == config


def test_sam_parameters_are_named_in_pascal_case():
    params = QueueConfig().sam_parameters()
    assert params["BatchSize"] == "1" and params["MaxBatchingWindowS"] == "0" and params["DlqRetentionS"] == "1209600"
