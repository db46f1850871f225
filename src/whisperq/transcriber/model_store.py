"""The models a deployment holds: fetched at build time (`whisperq models fetch`, the Dockerfile's
WHISPERQ_MODELS build argument) into a directory with a manifest, read at run time without a network.

A model is named one of three ways:
- a name whose weights ship in a Python package (`tiny.en`, `base`): recorded where they lie;
- a local CTranslate2 Whisper directory (`./my-model`, or `NAME=./my-model`): copied in;
- a model-hub repository of a CTranslate2 Whisper model (`Systran/faster-whisper-large-v3`), or
  faster-whisper's short name for one (`large-v3`), or `NAME=owner/repo[@revision]`: downloaded with
  the hub's own client (`huggingface_hub`, as faster-whisper's `download_model` does, HF_ENDPOINT
  honoured), each file then checked against the sha256 (or git blob id) the hub lists for it.

The store is the cache directory (WHISPERQ_CACHE_DIR; /opt/whisperq-cache in the image), the models
under its `models/`. The manifest (`<dir>/manifest.json`) records, for each model, its name, source, repository and the
commit it came from, and every file's size and sha256."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from whisperq.core import model_facts
from whisperq.core.errors import ConfigError
from whisperq.transcriber.model_manifest import (
    ModelEntry,
    ModelFile,
    model_path,
    read_manifest,
    sha256_of,
    write_manifest,
)
from whisperq.transcriber.models import BUNDLED, bundled_size

# What faster-whisper's download_model takes from a repository: the rest (README, images) is not needed.
MODEL_FILES = ("config.json", "preprocessor_config.json", "model.bin", "tokenizer.json", "vocabulary.*")
# faster-whisper's short names for the hub's CTranslate2 conversions (faster_whisper.utils._MODELS).
HUB_NAMES = {
    "tiny": "Systran/faster-whisper-tiny",
    "base.en": "Systran/faster-whisper-base.en",
    "small.en": "Systran/faster-whisper-small.en",
    "small": "Systran/faster-whisper-small",
    "medium.en": "Systran/faster-whisper-medium.en",
    "medium": "Systran/faster-whisper-medium",
    "large-v2": "Systran/faster-whisper-large-v2",
    "large-v3": "Systran/faster-whisper-large-v3",
    "distil-large-v3": "Systran/faster-distil-whisper-large-v3",
    "distil-small.en": "Systran/faster-distil-whisper-small.en",
    "large-v3-turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
}
_REPO = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_NAME = re.compile(r"^[A-Za-z0-9][\w.+/-]{0,95}$")


def git_blob_id(path: Path) -> str:
    """Git's id of a file's content (the hub lists it for files not in LFS)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files_of(path: Path) -> list[ModelFile]:
    return [ModelFile(file.name, file.stat().st_size, sha256_of(file))
            for file in sorted(path.iterdir()) if file.is_file() and not file.name.startswith(".")]


def parse_spec(spec: str) -> tuple[str, str]:
    """`NAME=SOURCE` or `SOURCE` -> (name, source); a source's own name is its short name, its
    repository id or its directory's name."""
    name, sep, source = spec.partition("=")
    if not sep:
        source = spec
        name = Path(spec).name if _is_directory(spec) else spec
    if not _NAME.match(name):
        raise ConfigError(f"model name {name!r}: letters, digits and . _ - + / only, up to 96 characters")
    return name, source


def _is_directory(source: str) -> bool:
    return source.startswith((".", "/", "~")) or Path(source).expanduser().is_dir()


def fetch(specs: list[str], directory: Path, log: Any = print) -> list[ModelEntry]:
    """Fetch every model of `specs` into `directory` and record it in the manifest (a model fetched
    again replaces its entry); the entries fetched."""
    entries = read_manifest(directory)
    fetched = []
    for spec in specs:
        name, source = parse_spec(spec)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        if source in BUNDLED:
            path = BUNDLED[source](directory)
            entry = ModelEntry(name, "bundled", str(path), _files_of(path), fetched_at=now)
        elif _is_directory(source):
            entry = _copy_directory(name, Path(source).expanduser(), directory, now)
        else:
            entry = _download(name, HUB_NAMES.get(source, source), directory, now, log)
        entries[name] = entry
        write_manifest(directory, entries)
        fetched.append(entry)
        log(f"{name}: {entry.source}, {entry.size_bytes / 1e6:.1f} MB in {model_path(directory, entry)}")
    return fetched


def _copy_directory(name: str, source: Path, directory: Path, now: str) -> ModelEntry:
    if not (source / "model.bin").is_file():
        raise ConfigError(f"{source} has no model.bin (a CTranslate2 Whisper model directory is expected)")
    target = directory / _folder(name)
    tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(source, tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.replace(target)
    return ModelEntry(name, "directory", _folder(name), _files_of(target), fetched_at=now)


def _folder(name: str) -> str:
    """Where a fetched model lies under the store's directory (bundled ones that need joining lie
    there too: models/base)."""
    return "models/" + name.replace("/", "--")


def _download(name: str, repo: str, directory: Path, now: str, log: Any) -> ModelEntry:
    """The hub's client downloads the repository's model files at one commit; each is then checked
    against the hash the hub lists for it. The files arrive in a folder of their own that takes the
    model's place only once all of them are checked: a failed fetch leaves nothing behind."""
    repo, _, revision = repo.partition("@")
    if not _REPO.match(repo):
        raise ConfigError(f"{repo!r} is neither a bundled model ({', '.join(_bundled())}), a model directory, "
                          f"a short name ({', '.join(HUB_NAMES)}) nor a model-hub repository id (owner/name)")
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi()
    target = directory / _folder(name)
    partial = target.with_name(f".{target.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        commit = api.repo_info(repo, revision=revision or None).sha
        assert commit is not None
        listed = {item.path: item for item in api.list_repo_tree(repo, revision=commit, recursive=True)
                  if hasattr(item, "blob_id")}
        log(f"{name}: downloading {repo} at {commit[:12]} from {api.endpoint}")
        snapshot_download(repo, revision=commit, local_dir=partial, allow_patterns=list(MODEL_FILES))
        files = _checked(name, repo, partial, listed)
    except ConfigError:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    except HfHubHTTPError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise ConfigError(f"model {name!r}: the hub refused {repo}: {exc}") from exc
    except Exception as exc:  # the hub's client's network errors (httpx's), a full disk
        shutil.rmtree(partial, ignore_errors=True)
        raise ConfigError(f"model {name!r}: cannot fetch {repo} from {api.endpoint}: "
                          f"{type(exc).__name__}: {exc}") from exc
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # nothing half-fetched is left
        raise
    shutil.rmtree(partial / ".cache", ignore_errors=True)  # the client's own download state
    shutil.rmtree(target, ignore_errors=True)
    partial.replace(target)
    return ModelEntry(name, "hub", _folder(name), files, repo=repo, revision=commit, fetched_at=now)


def _checked(name: str, repo: str, folder: Path, listed: dict[str, Any]) -> list[ModelFile]:
    """Each downloaded file against the hash the hub lists for it: the sha256 of a file in LFS, the git
    blob id of the others."""
    if not (folder / "model.bin").is_file():
        raise ConfigError(f"model {name!r}: {repo} has no model.bin (a CTranslate2 Whisper model is expected)")
    files = []
    for file in sorted(p for p in folder.iterdir() if p.is_file()):
        item = listed.get(file.name)
        if item is None:
            raise ConfigError(f"model {name!r}: {file.name} is not in {repo}'s file list")
        sha256 = sha256_of(file)
        lfs = getattr(item, "lfs", None)
        expected, got = (lfs.sha256, sha256) if lfs is not None else (item.blob_id, git_blob_id(file))
        if expected != got:
            raise ConfigError(f"model {name!r}: {file.name} from {repo} does not match the hub's checksum "
                              f"(expected {expected}, got {got}); nothing was kept: fetch again")
        files.append(ModelFile(file.name, file.stat().st_size, sha256))
    return files


def _bundled() -> list[str]:
    return sorted(BUNDLED)


def catalogue(directory: Path, default: str) -> list[dict[str, Any]]:
    """The models a deployment can run, for `whisperq models` and GET /v1/models: the bundled ones,
    then those its store's manifest lists (a store's entry replaces a bundled one of the same name)."""
    rows: dict[str, dict[str, Any]] = {}
    for name in sorted(BUNDLED):
        rows[name] = {"name": name, "source": "bundled", "repo": None, "revision": None,
                      "sizeMb": round(bundled_size(name) / 1e6, 1)}
    for entry in read_manifest(directory).values():
        rows[entry.name] = {"name": entry.name, "source": entry.source, "repo": entry.repo,
                            "revision": entry.revision, "sizeMb": round(entry.size_bytes / 1e6, 1)}
    for row in rows.values():
        english = row["name"].endswith(".en") or (row["repo"] or "").endswith(".en")
        row["languages"] = "English" if english else "99 languages"
        facts = model_facts.FACTS.get(row["name"])
        row["realTime"] = facts.real_time if facts else None
        row["speedSource"] = facts.to_dict()["speedSource"] if facts else None
        row["default"] = row["name"] == default
    return list(rows.values())
