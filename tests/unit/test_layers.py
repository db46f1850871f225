"""The layers: cli, local, api_handler, transcriber -> aws, queue_config -> core; nothing imports
upward. Read from the source's import statements."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "src" / "whisperq"
# What each package may import from whisperq (besides itself and the top-level helpers).
TOP_LEVEL = {"constants", "config", "faults", "tracing", "queue_config", "core", "__init__", "__version__"}
MAY_IMPORT = {
    "core": {"core", "constants"},
    "queue_config": {"queue_config", "core", "constants"},
    "client": {"client", "core", "constants"},
    "aws": TOP_LEVEL | {"aws"},
    "transcriber": TOP_LEVEL | {"aws", "transcriber"},
    "api_handler": TOP_LEVEL | {"aws", "api_handler"},
    "evaluation": TOP_LEVEL | {"aws", "client", "evaluation", "transcriber"},
    "planner": {"planner", "core", "queue_config", "constants"},
}


def whisperq_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module == "whisperq":
            found |= {f"whisperq.{alias.name}" for alias in node.names}  # from whisperq import constants
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("whisperq."):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("whisperq")}
    return found


def test_no_module_outside_cli_imports_the_cli():
    offenders = [f"{path.relative_to(PACKAGE)} imports {name}" for path in PACKAGE.rglob("*.py")
                 if path.relative_to(PACKAGE).parts[0] != "cli"
                 for name in whisperq_imports(path) if name == "whisperq.cli" or name.startswith("whisperq.cli.")]
    assert offenders == []


def test_each_layer_imports_only_what_is_below_it():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        layer = path.relative_to(PACKAGE).parts[0]
        if layer not in MAY_IMPORT:
            continue
        for name in whisperq_imports(path):
            parts = name.split(".")
            target = parts[1] if len(parts) > 1 else "__init__"
            if target not in MAY_IMPORT[layer]:
                offenders.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert offenders == []
