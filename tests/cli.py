"""Running the rasa CLI as a user does, in a project directory with its own training cache."""

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import requests


def rasa_command(*arguments: str) -> List[str]:
    """The `rasa` command of the Python running the tests."""
    return [sys.executable, "-m", "rasa", *arguments]


def rasa_env(project: Path) -> Dict[str, str]:
    """The environment with a training cache that belongs to `project` alone."""
    return {**os.environ, "RASA_CACHE_DIRECTORY": str(project / ".rasa-cache")}


def rasa(project: Path, *arguments: str, expect_success: bool = True) -> str:
    """Run `rasa ARGUMENTS` in `project` and return what it printed (stdout and stderr)."""
    result = subprocess.run(
        rasa_command(*arguments), cwd=project, env=rasa_env(project),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1200,
    )
    succeeded = result.returncode == 0
    assert succeeded == expect_success, f"rasa {' '.join(arguments)} exited {result.returncode}:\n{result.stdout}"
    return result.stdout


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serve(model: Path, workdir: Path, start_timeout: float = 180) -> Iterator[Tuple[str, int]]:
    """`rasa run --enable-api` with `model` on a free 127.0.0.1 port; yields (url, pid) once it answers."""
    port = free_port()
    log_path = workdir / "rasa-run.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            rasa_command("run", "--enable-api", "--model", str(model), "-i", "127.0.0.1", "-p", str(port)),
            cwd=workdir, env=rasa_env(workdir), stdout=log, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while not _answers(url):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rasa run did not start:\n{log_path.read_text()}")
            time.sleep(1)
        yield url, server.pid
    finally:
        server.terminate()
        server.wait(timeout=60)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.ConnectionError:
        return False
