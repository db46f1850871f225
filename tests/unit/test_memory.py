"""The twin's memory, read from /proc: each part with the processes it started, the sum the tree's."""

import subprocess
import sys

import pytest

from whisperq.local import memory

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

HOLD = "import sys, time; block = bytearray(64 * 1024 * 1024); sys.stdout.write('ready\\n'); sys.stdout.flush(); " \
       "time.sleep(60)"


def _child(code: str) -> subprocess.Popen[str]:
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None and process.stdout.readline() == "ready\n"
    return process


def test_tree_rss_when_a_named_child_holds_memory_then_it_is_counted_under_its_name():
    # A child that starts a grandchild holding 64 MiB: the grandchild counts under the child's name.
    parent = _child(
        "import subprocess, sys; child = subprocess.Popen([sys.executable, '-c', " + repr(HOLD) + "], "
        "stdout=subprocess.PIPE, text=True); assert child.stdout.readline() == 'ready\\n'; "
        "sys.stdout.write('ready\\n'); sys.stdout.flush(); child.wait()")
    other = _child(HOLD)
    grandchildren = memory.descendants(parent.pid)
    try:
        usage = memory.tree_rss(memory.os.getpid(), [("holder", parent.pid)])
        figures = memory.in_mib(usage)
        assert figures["holder"] >= 64  # the grandchild's block, touched, is resident
        assert figures["other"] >= 64  # a child no part names
        assert figures["twin"] > 0
        assert figures["total"] == pytest.approx(sum(v for k, v in figures.items() if k != "total"), abs=0.5)
        assert len(grandchildren) == 1 and parent.pid in memory.descendants(memory.os.getpid())
    finally:
        for pid in grandchildren:
            memory.os.kill(pid, 9)
        for process in (parent, other):
            process.kill()
            process.wait()


def test_rss_bytes_when_the_process_is_gone_then_zero():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    assert memory.rss_bytes(process.pid) == 0
    assert memory.rss_bytes(memory.os.getpid()) > 0
