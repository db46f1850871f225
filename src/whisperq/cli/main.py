"""`whisperq`: transcribe audio through a whisperq deployment, operate it, and run the local twin."""

from __future__ import annotations

from whisperq.cli import evaluate, jobs, models, ops, plan, transcribe, twin  # noqa: F401 - registering the commands on the group
from whisperq.cli.app import cli


def main() -> None:
    cli.main(prog_name="whisperq")


if __name__ == "__main__":
    main()
