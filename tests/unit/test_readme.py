"""The README's and the docs' commands run as written: every `$ ` line of their console blocks names a
make target, a CLI command and options that exist, and files the repository has; the ones that need
neither a twin nor AWS are run, and print what the page shows. The README stays short, and every page
behind it is linked from it; every relative link leads to a file the repository has."""

from __future__ import annotations

import os
import re
import shlex

import click
import pytest
from click.testing import CliRunner

from tests.conftest import ROOT
from whisperq.cli import main  # noqa: F401 - registers every command
from whisperq.cli.app import cli

README = (ROOT / "README.md").read_text(encoding="utf-8")
GUIDES = sorted((ROOT / "docs").glob("*.md"))
PAGES = {"README.md": README, **{f"docs/{page.name}": page.read_text(encoding="utf-8") for page in GUIDES}}
AUDIO = re.compile(r"\.(wav|flac|mp3|m4a|mp4|ogg|oga|opus|webm|aac)$")


def console_commands() -> list[tuple[str, list[str]]]:
    """Each command of the README's console blocks (continuation lines joined), and the lines after it
    up to the next command (what it prints)."""
    found: list[tuple[str, list[str]]] = []
    blocks = [block for text in PAGES.values() for block in re.findall(r"```console\n(.*?)```", text, re.S)]
    for block in blocks:
        lines = block.splitlines()
        index = 0
        while index < len(lines):
            line = lines[index]
            if not line.startswith("$ "):
                index += 1
                continue
            command = line[2:]
            while command.endswith("\\"):
                index += 1
                command = command[:-1] + " " + lines[index].strip()
            index += 1
            output = []
            while index < len(lines) and not lines[index].startswith("$ "):
                output.append(lines[index])
                index += 1
            found.append((command.split("  #")[0].strip(), output))
    return found


COMMANDS = console_commands()


def whisperq_argv(command: str) -> tuple[dict[str, str], list[str]] | None:
    """The environment assignments and the CLI's arguments of a `.venv/bin/whisperq ...` command."""
    words = shlex.split(command)
    env = {}
    while words and re.match(r"^[A-Z_]+=", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    if not words or words[0] != ".venv/bin/whisperq":
        return None
    return env, words[1:]


def test_readme_when_read_then_every_command_is_one_these_tests_check():
    assert len(COMMANDS) >= 15
    unchecked = [c for c, _ in COMMANDS if not c.startswith(("make ", "export ", ".venv/bin/python "))
                 and not whisperq_argv(c)]
    assert unchecked == []


@pytest.mark.parametrize("command", [c for c, _ in COMMANDS if c.startswith(".venv/bin/python ")])
def test_script_command_when_copied_then_the_script_and_its_options_exist(command):
    script, *args = shlex.split(command)[1:]
    source = (ROOT / script).read_text(encoding="utf-8")
    for word in args:
        if word.startswith("--"):
            assert f'"{word.split("=")[0]}"' in source, f"{command}: {script} has no option {word}"


@pytest.mark.parametrize("command", [c for c, _ in COMMANDS if c.startswith("make ")])
def test_make_command_when_copied_then_the_target_exists(command):
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    target = command.split()[1]
    assert re.search(rf"^{re.escape(target)}:", makefile, re.M), command


@pytest.mark.parametrize("command", [c for c, _ in COMMANDS if whisperq_argv(c)])
def test_cli_command_when_copied_then_its_command_options_and_files_exist(command):
    _, argv = whisperq_argv(command)
    context = click.Context(cli)
    group: click.Command = cli
    args = list(argv)
    while isinstance(group, click.Group) and args and not args[0].startswith("-"):
        found = group.get_command(context, args[0])
        assert found is not None, f"{command}: no command {args[0]!r}"
        group = found
        args.pop(0)
    options = {opt for param in group.params
               for opt in [*getattr(param, "opts", []), *getattr(param, "secondary_opts", [])]}
    for word in args:
        if word.startswith("--"):
            assert word.split("=")[0] in options, f"{command}: {group.name} has no option {word}"
        elif AUDIO.search(word):
            assert (ROOT / word).exists(), f"{command}: {word} is not in the repository"


@pytest.mark.parametrize("command", [c for c, _ in COMMANDS if whisperq_argv(c) and
                                     whisperq_argv(c)[1][:2] in (["infra", "params"], ["plan", "--calibration"])])
def test_cli_command_when_it_needs_no_twin_then_prints_what_the_readme_shows(command, monkeypatch):
    env, argv = whisperq_argv(command)
    for name in list(os.environ):
        if name.startswith("WHISPERQ_QUEUE"):
            monkeypatch.delenv(name)
    shown = dict(COMMANDS)[command]
    result = CliRunner().invoke(cli, argv, env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == shown


def test_readme_when_read_then_short_and_every_guide_is_linked_from_it():
    assert len(README.splitlines()) < 200
    unlinked = [page.name for page in GUIDES if f"(docs/{page.name}" not in README]
    assert unlinked == []


@pytest.mark.parametrize("name", sorted(PAGES))
def test_page_when_its_relative_links_are_followed_then_each_file_exists(name):
    here = (ROOT / name).parent
    targets = re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", PAGES[name])
    missing = [t for t in targets if not t.startswith(("http://", "https://", "mailto:")) and not (here / t).exists()]
    assert missing == []


def test_exit_code_table_when_read_then_it_is_the_one_in_core():
    from whisperq.core.errors import ExitCode

    table = re.search(r"\| exit code \| meaning \|\n\|---\|---\|\n((?:\|.*\|\n)+)", PAGES["docs/usage.md"]).group(1)
    rows = [tuple(cell.strip() for cell in line.strip("|").split(" | ")) for line in table.splitlines()]
    assert rows == [(str(code.value), code.meaning) for code in ExitCode]

