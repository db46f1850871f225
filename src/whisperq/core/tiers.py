"""Model tiers: one per model a deployment serves, each its own queue with its dead-letter queue, its own
upload prefix (audio/<tier>/) notifying that queue, and its own function sized for the model (a Lambda
function's memory is fixed, so a large model and tiny.en never share one).

A tier's id is its model's name made fit for a queue name and a key prefix: every character other than
a letter, digit, '-' or '_' becomes '-' (tiny.en -> tiny-en). The default model's tier keeps the queue
names the deployment was given; another tier's queue is `<queue>-<tier>` and its dead-letter queue
`<queue>-<tier>-dlq` (infra/template.yaml names them the same way)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from whisperq.core.errors import ConfigError, InvalidRequest

_UNFIT = re.compile(r"[^A-Za-z0-9_-]")
# SQS names stop at 80 characters: the stack's name (up to 29), "-transcription-", the id, "-dlq".
MAX_TIER_CHARS = 32


def tier_id(model: str) -> str:
    """tiny.en -> tiny-en, Systran/faster-whisper-large-v3 -> Systran-faster-whisper-large-v3."""
    return _UNFIT.sub("-", model)


@dataclass(frozen=True)
class Tier:
    model: str
    default: bool = False

    @property
    def id(self) -> str:
        return tier_id(self.model)

    @property
    def audio_prefix(self) -> str:
        """Where its jobs' audio is uploaded: the prefix whose S3 events go to its queue."""
        return f"audio/{self.id}/"

    def queue_name(self, base: str) -> str:
        """Its queue's name, given the deployment's (the default tier's) queue name."""
        return base if self.default else f"{base}-{self.id}"

    def dlq_name(self, base_queue: str, base_dlq: str) -> str:
        return base_dlq if self.default else f"{base_queue}-{self.id}-dlq"


@dataclass(frozen=True)
class Tiers:
    """The deployment's tiers, the default model's first."""

    tiers: tuple[Tier, ...]

    @classmethod
    def of(cls, default: str, models: Iterable[str] = ()) -> Tiers:
        """`default`'s tier, then one for each other model in `models` (in their order, once each)."""
        names = [default, *(m for m in models if m != default)]
        if len(set(names)) != len(names):
            raise ConfigError(f"the deployment's models name one model twice: {', '.join(names)}")
        tiers = tuple(Tier(name, default=index == 0) for index, name in enumerate(names))
        ids = [t.id for t in tiers]
        clash = sorted({i for i in ids if ids.count(i) > 1})
        if clash:
            raise ConfigError(f"two of the deployment's models share a tier id ({', '.join(clash)}): name one "
                              "of them otherwise when it is fetched (NAME=SOURCE)")
        # The default tier's queues are named by the deployment: its model may be a directory's path.
        long = [t.model for t in tiers if not t.default and len(t.id) > MAX_TIER_CHARS]
        if long:
            raise ConfigError(f"model names of tiers must be at most {MAX_TIER_CHARS} characters (queue names "
                              f"have 80): {', '.join(long)}; name it shorter when it is fetched (NAME=SOURCE)")
        return cls(tiers)

    @property
    def default(self) -> Tier:
        return self.tiers[0]

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(t.model for t in self.tiers)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.tiers)

    def __len__(self) -> int:
        return len(self.tiers)

    def for_model(self, model: str | None) -> Tier:
        """The tier that runs `model` (None: the default's); an unknown model is the client's error."""
        if model is None:
            return self.default
        for tier in self.tiers:
            if tier.model == model:
                return tier
        raise InvalidRequest(f"model {model!r} is not served by this deployment; its models: "
                             f"{', '.join(self.models)} (GET /v1/models lists them)")

    def serves_key(self, key: str) -> bool:
        """Whether an object at `key` notifies one of these tiers' queues (audio/<tier>/...)."""
        return any(key.startswith(t.audio_prefix) for t in self.tiers)

    def by_id(self, tier: str) -> Tier | None:
        return next((t for t in self.tiers if t.id == tier), None)
