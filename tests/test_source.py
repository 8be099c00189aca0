"""Checks of the source itself, quick enough for the unit tier."""

import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).parent.parent


def test_nothing_in_the_code_needs_a_python_newer_than_3_8() -> None:
    # Written on 3.10, CI runs 3.10 only: vermin reads the source for what 3.9+ added (list[int] in
    # annotations, dict | dict, str.removeprefix, ...).
    paths = [str(REPOSITORY / folder) for folder in ("bert_intent", "benchmarks", "tests", "scripts")]
    result = subprocess.run(
        [sys.executable, "-c", "import sys, vermin; sys.exit(vermin.main())",
         "--target=3.8-", "--eval-annotations", "--violations", "--no-tips", *paths],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
