import pytest

from whisperq.config import Settings
from whisperq.core.errors import ConfigError


def test_from_env_when_nothing_set_then_defaults():
    settings = Settings.from_env({})
    assert settings.engine == "faster-whisper" and settings.model == "tiny.en" and settings.endpoint_url is None


def test_from_env_when_explicit_then_beats_environment():
    settings = Settings.from_env({"WHISPERQ_MODEL": "from-env", "WHISPERQ_BUCKET": "b-env"}, model="explicit")
    assert settings.model == "explicit" and settings.bucket == "b-env"


def test_region_when_only_default_region_set_then_used():
    assert Settings.from_env({"AWS_DEFAULT_REGION": "eu-west-1"}).region == "eu-west-1"
    assert Settings.from_env({"AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "us-west-2"}).region == "us-west-2"


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"WHISPERQ_ENGINE": "whisper-cpp"}, "WHISPERQ_ENGINE"),
        ({"WHISPERQ_CPU_THREADS": "two"}, "WHISPERQ_CPU_THREADS"),
        ({"WHISPERQ_CPU_THREADS": "-1"}, "WHISPERQ_CPU_THREADS"),
        ({"WHISPERQ_UPLOAD_URL_EXPIRY_S": "999999"}, "7 days"),
        ({"WHISPERQ_QUEUE_BATCH_SIZE": "x"}, "batch_size"),
    ],
)
def test_from_env_when_invalid_then_config_error_at_start(env, fragment):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert fragment in str(caught.value)


def test_settings_are_frozen():
    with pytest.raises(AttributeError):
        Settings.from_env({}).engine = "x"  # type: ignore[misc]


def test_origins_when_argument_variable_file_and_default_then_each_value_says_where_it_came_from(tmp_path):
    """One loader decides the precedence (argument > variable > file > default) and records it; `whisperq
    config show` prints these origins instead of working them out again."""
    from whisperq.config import Settings

    file = tmp_path / "queue.json"
    file.write_text('{"batch_size": 3, "wait_time_s": 5}')
    settings = Settings.from_env({"WHISPERQ_MODEL": "base", "WHISPERQ_ENGINE": "synthetic",
                                  "WHISPERQ_QUEUE_CONFIG": str(file), "WHISPERQ_QUEUE_WAIT_TIME_S": "7",
                                  "AWS_DEFAULT_REGION": "eu-west-1"}, engine="faster-whisper")
    assert (settings.engine, settings.origins["engine"]) == ("faster-whisper", "argument")
    assert (settings.model, settings.origins["model"]) == ("base", "$WHISPERQ_MODEL")
    assert (settings.region, settings.origins["region"]) == ("eu-west-1", "$AWS_DEFAULT_REGION")
    assert settings.origins["bucket"] == "default"
    assert (settings.queue.batch_size, settings.origins["queue.batch_size"]) == (3, f"file {file}")
    assert (settings.queue.wait_time_s, settings.origins["queue.wait_time_s"]) == (7, "$WHISPERQ_QUEUE_WAIT_TIME_S")
    assert settings.origins["queue.max_receive_count"] == "default"
    assert "origins" not in settings.to_dict()
