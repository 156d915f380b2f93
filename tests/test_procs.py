"""autocoder.procs: zombies are reaped and a stopped group has no process left (real processes)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from autocoder import procs

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def wait_for_state(pid: int, wanted: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while procs.proc_state(pid) != wanted:
        assert time.monotonic() < deadline, f"pid {pid} never reached state {wanted}"
        time.sleep(0.02)


def test_alive_reaps_our_zombie_child(tmp_path):
    pid, _ = procs.spawn([sys.executable, "-c", "pass"], log_path=tmp_path / "log", cwd=tmp_path)
    wait_for_state(pid, "Z")  # finished, not collected: os.kill(pid, 0) still succeeds
    os.kill(pid, 0)
    assert procs.alive(pid) is False
    with pytest.raises(ProcessLookupError):  # reaped: the pid is gone, not a zombie
        os.kill(pid, 0)


def test_alive_is_true_for_a_running_process(tmp_path):
    pid, started = procs.spawn(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        log_path=tmp_path / "log",
        cwd=tmp_path,
    )
    try:
        assert procs.alive(pid) is True
        assert procs.still_running(pid, started) is True
        assert procs.still_running(pid, "not-its-start-time") is False
    finally:
        procs.terminate(pid, timeout=5)
    assert procs.alive(pid) is False


GROUP = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[2]])
time.sleep(120)
"""
STUBBORN = """
import pathlib, signal, sys, time, os
signal.signal(signal.SIGTERM, signal.SIG_IGN)
pathlib.Path(sys.argv[1]).write_text(str(os.getpid()))
time.sleep(120)
"""


def test_terminate_waits_until_the_whole_group_is_gone(tmp_path):
    """The leader dies on SIGTERM but its child ignores it: terminate must SIGKILL the child and
    return only when no process of the group runs, with the leader reaped."""
    ready = tmp_path / "child.pid"
    cmd = [
        sys.executable,
        "-c",
        GROUP,
        str(ready),
        STUBBORN.replace("sys.argv[1]", repr(str(ready))),
    ]
    pid, _ = procs.spawn(cmd, log_path=tmp_path / "log", cwd=tmp_path)
    deadline = time.monotonic() + 30
    while not ready.exists() or not ready.read_text():
        assert time.monotonic() < deadline, (tmp_path / "log").read_text()
        time.sleep(0.05)
    child = int(ready.read_text())
    assert set(procs.group_members(pid)) == {pid, child}
    procs.terminate(pid, timeout=1)
    assert procs.group_members(pid) == []
    assert procs.proc_state(child) in ("", "Z")  # killed (its parent, init, may not reap yet)
    with pytest.raises(ProcessLookupError):  # the leader is our child: reaped, pid gone
        os.kill(pid, 0)


def test_terminate_of_a_finished_group_returns(tmp_path):
    pid, _ = procs.spawn([sys.executable, "-c", "pass"], log_path=tmp_path / "log", cwd=tmp_path)
    wait_for_state(pid, "Z")
    procs.terminate(pid, timeout=1)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_alive_reaps_a_child_that_finishes_during_the_check(tmp_path, monkeypatch):
    """The race behind the old flake: the child was still running at the first reap and a zombie
    at the state read; alive() must reap it then, not leave the pid behind."""
    pid, _ = procs.spawn([sys.executable, "-c", "pass"], log_path=tmp_path / "log", cwd=tmp_path)
    wait_for_state(pid, "Z")
    calls: list[int] = []
    real_reap = procs.reap

    def late_reap(p: int) -> bool:
        calls.append(p)
        return False if len(calls) == 1 else real_reap(p)  # first look: "still running"

    monkeypatch.setattr(procs, "reap", late_reap)
    assert procs.alive(pid) is False
    assert len(calls) == 2
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
