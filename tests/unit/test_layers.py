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


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(path: Path, known: set[str]) -> set[str]:
    """The whisperq modules a file imports anywhere (module level, in functions, under TYPE_CHECKING)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("whisperq"):
            for alias in node.names:  # `from whisperq.transcriber import audio` imports a module
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in known else node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("whisperq")}
    return found & known


def test_no_module_imports_itself_back_through_others():
    paths = {_module_of(path): path for path in PACKAGE.rglob("*.py")}
    graph = {module: _imported_modules(path, set(paths)) - {module} for module, path in paths.items()}
    cycles = []

    def visit(module: str, trail: list[str], done: set[str]) -> None:
        for target in sorted(graph[module]):
            if target in trail:
                cycles.append(" -> ".join(trail[trail.index(target):] + [target]))
            elif target not in done:
                visit(target, [*trail, target], done)
        done.add(module)

    done: set[str] = set()
    for module in sorted(graph):
        if module not in done:
            visit(module, [module], done)
    # A package's __init__ importing its own modules is how a package exports; cycles through it are not.
    cycles = [c for c in cycles if not any(part in paths and paths[part].name == "__init__.py"
                                           for part in c.split(" -> "))]
    assert cycles == []


def test_boto3_when_imported_then_only_under_aws():
    """The adapters are the only code that drives AWS: the rest names aws/ (X-Ray reads, API keys, bucket
    versions have adapters there). faults.py alone is let through: it raises botocore's own errors from
    botocore's event hooks, which is what it is for."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "aws" or relative.as_posix() == "faults.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            offenders += [f"{relative} imports {name}" for name in names if name.split(".")[0] in ("boto3", "botocore")]
    assert offenders == []
