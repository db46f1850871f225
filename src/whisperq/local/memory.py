"""Where the twin's memory goes: the resident set of each of its processes, read from /proc (Linux), each
child counted with the processes it started (the API front with its function's containers)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

MIB = 1024 * 1024


def rss_bytes(pid: int) -> int:
    """The resident set of one process (0 when it is gone, or without /proc)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _parents() -> dict[int, int]:
    """Every process's parent, by pid."""
    parents: dict[int, int] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return parents
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as handle:
                # The parent is the second field after the parenthesised command name.
                parents[int(name)] = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return parents


def descendants(pid: int, parents: Mapping[int, int] | None = None) -> list[int]:
    """The processes `pid` started, and theirs, at any depth."""
    parents = _parents() if parents is None else parents
    children: dict[int, list[int]] = {}
    for child, parent in parents.items():
        children.setdefault(parent, []).append(child)
    found, stack = [], list(children.get(pid, []))
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(children.get(child, []))
    return found


def tree_rss(root: int, parts: Iterable[tuple[str, int]]) -> dict[str, int]:
    """The resident set of `root`'s process tree in bytes, by part: each named child with what it
    started, `root` itself, and `other` for children no part names (the spawn start method's resource
    tracker). Their sum is the tree's."""
    parents = _parents()
    named = dict((pid, name) for name, pid in parts)
    usage = {"twin": rss_bytes(root), "other": 0}
    for child in descendants(root, parents):
        if parents.get(child) != root:
            continue
        total = rss_bytes(child) + sum(rss_bytes(pid) for pid in descendants(child, parents))
        name = named.get(child, "other")
        usage[name] = usage.get(name, 0) + total
    return usage


def in_mib(usage: Mapping[str, int]) -> dict[str, float]:
    """The same figures in MiB, with their `total`."""
    figures = {name: round(value / MIB, 1) for name, value in usage.items()}
    figures["total"] = round(sum(usage.values()) / MIB, 1)
    return figures
