"""`whisperq models`: the models this deployment holds, and `models fetch` that adds them (a build step)."""

from __future__ import annotations

from pathlib import Path

import click

from whisperq.cli.app import Context, cli
from whisperq.config import Settings


def _store(directory: str | None) -> Path:
    return Path(directory) if directory else Path(Settings.from_env().resolved_cache_dir)


@cli.group(invoke_without_command=True)
@click.option("--dir", "directory", type=click.Path(file_okay=False),
              help="The model store (default: WHISPERQ_CACHE_DIR, ~/.cache/whisperq).")
@click.option("--api", "from_api", is_flag=True,
              help="The models the running twin or stack serves (GET /v1/models), each on a tier of its own.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def models(ctx: click.Context, directory: str | None, from_api: bool, as_json: bool) -> None:
    """The models this deployment can run: the bundled ones and those fetched into its store (speed: audio
    seconds a second on one thread at beam 5, measured or estimated), or with --api those it serves."""
    if ctx.invoked_subcommand is not None:
        return
    from whisperq.transcriber.model_store import catalogue

    obj: Context = ctx.obj
    if from_api:
        served = [m for m in obj.client().models() if "aliasOf" not in m]
        obj.emit(served, as_json, "\n".join(
            f"{m['id']:<36} {_languages(m['languages']):<14} {_speed(m.get('realTime'))}"
            f"{'  (default, whisper-1)' if m.get('default') else ''}" for m in served))
        return
    rows = catalogue(_store(directory), Settings.from_env().model)
    text = "\n".join(f"{r['name']:<36} {r['source']:<9} {r['languages']:<14} {r['sizeMb']:>8.1f} MB  "
                     f"{_speed(r['realTime'])}{'  (default)' if r['default'] else ''}" for r in rows)
    obj.emit(rows, as_json, text)


def _speed(real_time: float | None) -> str:
    return f"{real_time:>6.1f}x real time" if real_time else "     speed unknown"


def _languages(languages: object) -> str:
    return "English" if languages == ["en"] else "99 languages"


@models.command("fetch")
@click.argument("specs", nargs=-1, required=True, metavar="MODEL...")
@click.option("--dir", "directory", type=click.Path(file_okay=False),
              help="The model store (default: WHISPERQ_CACHE_DIR, ~/.cache/whisperq).")
@click.pass_obj
def models_fetch(obj: Context, specs: tuple[str, ...], directory: str | None) -> None:
    """Add models to the store, each MODEL a bundled name (tiny.en), a short name (large-v3), a model-hub
    repository of a CTranslate2 Whisper model (Systran/faster-whisper-large-v3[@revision]) or a local
    directory, optionally as NAME=MODEL. Hub files are checked against the hub's checksums; the
    manifest records each file's size and sha256. This is a build step: at run time nothing is
    downloaded."""
    from whisperq.transcriber import model_store
    from whisperq.transcriber.model_manifest import MANIFEST

    entries = model_store.fetch(list(specs), _store(directory), log=obj.err.print)
    obj.err.print(f"{len(entries)} model(s) in {_store(directory) / MANIFEST}")


