"""The manifest of a model store: what was fetched at build time (each model's source, commit, and every
file's size and sha256), read at run time to find a model without a network."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from whisperq.core.errors import ConfigError

MANIFEST = "manifest.json"
BUILD_ARGUMENT = "WHISPERQ_MODELS"


@dataclass(frozen=True)
class ModelFile:
    name: str
    size: int
    sha256: str


@dataclass
class ModelEntry:
    """One model of the deployment, as the manifest records it."""

    name: str
    source: str  # "bundled", "directory" or "hub"
    path: str  # relative to the manifest's directory, or absolute (a bundled model's package)
    files: list[ModelFile] = field(default_factory=list)
    repo: str | None = None
    revision: str | None = None  # the hub's commit
    fetched_at: str = ""

    @property
    def size_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "path": self.path, "repo": self.repo,
                "revision": self.revision, "fetchedAt": self.fetched_at, "sizeBytes": self.size_bytes,
                "files": [asdict(f) for f in self.files]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelEntry:
        return cls(name=data["name"], source=data["source"], path=data["path"],
                   files=[ModelFile(**f) for f in data.get("files", [])], repo=data.get("repo"),
                   revision=data.get("revision"), fetched_at=data.get("fetchedAt", ""))


def read_manifest(directory: Path) -> dict[str, ModelEntry]:
    """The models recorded in `directory`'s manifest, by name (none when it has no manifest)."""
    try:
        data = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"the model manifest {directory / MANIFEST} cannot be read: {exc}") from exc
    return {entry["name"]: ModelEntry.from_dict(entry) for entry in data.get("models", [])}


def write_manifest(directory: Path, entries: dict[str, ModelEntry]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f"{MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"models": [e.to_dict() for e in entries.values()]}, indent=2) + "\n",
                   encoding="utf-8")
    tmp.replace(directory / MANIFEST)


def model_path(directory: Path, entry: ModelEntry) -> Path:
    return Path(entry.path) if os.path.isabs(entry.path) else directory / entry.path


def check_present(directory: Path, entry: ModelEntry) -> Path:
    """The model's directory, after checking that every file the manifest lists is there at its size
    (sizes only: hashing gigabytes at each cold start would cost seconds; `whisperq models verify`
    hashes them)."""
    path = model_path(directory, entry)
    for item in entry.files:
        file = path / item.name
        if not file.is_file() or file.stat().st_size != item.size:
            raise ConfigError(f"model {entry.name!r}: {file} is missing or not the size the manifest records "
                              f"({item.size} bytes); fetch it again (`whisperq models fetch {entry.name}`)")
    return path


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


