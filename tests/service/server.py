"""Helpers for the service tests: a workspace on the O*NET fixture, a real uvicorn server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env_for(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AUTOCODER_HOME=str(home),
        PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    return env


def cli(
    home: Path, args: list[str], sets: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``autocoder [--set ...] ARGS`` in a subprocess over the workspace ``home``."""
    cmd = [sys.executable, "-m", "autocoder.cli"]
    for s in sets or []:
        cmd += ["--set", s]
    return subprocess.run(
        cmd + args, env=env_for(home), capture_output=True, text=True, timeout=600, check=False
    )


def prepare_workspace(home: Path, fixtures: Path, sets: list[str] | None = None) -> None:
    for args in (
        ["taxonomy", "import", "onet", str(fixtures / "onet_mini"), "--version", "mini"],
        ["index", "build"],
    ):
        done = cli(home, args, sets)
        assert done.returncode == 0, done.stderr


class Server:
    """``autocoder serve`` on 127.0.0.1 and a free port, in its own process group."""

    def __init__(self, home: Path, sets: list[str] | None = None, log: Path | None = None) -> None:
        self.home = home
        self.sets = list(sets or [])
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log or home / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 240) -> Server:
        cmd = [sys.executable, "-m", "autocoder.cli"]
        for s in self.sets:
            cmd += ["--set", s]
        cmd += ["serve", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd, env=env_for(self.home), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not start: {self.log.read_text()}")
            time.sleep(0.5)

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
