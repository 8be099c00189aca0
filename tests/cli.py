"""Running the rasa CLI as a user does, in a project directory with its own training cache."""

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Dict, List


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
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600,
    )
    succeeded = result.returncode == 0
    assert succeeded == expect_success, f"rasa {' '.join(arguments)} exited {result.returncode}:\n{result.stdout}"
    return result.stdout


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
