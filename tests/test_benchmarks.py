"""The benchmarks skip cleanly, with a message, where their evaluation data is absent."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).parent.parent / "benchmarks"


@pytest.mark.training
def test_train_quality_says_it_skips_without_the_dataset(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "train_quality.py")],
        env={**os.environ, "CAIS_DIR": str(tmp_path / "absent")}, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "CAIS not found" in result.stdout and "skipping" in result.stdout


@pytest.mark.parametrize("script", [
    "few_shot.py", "confidence.py", "entities.py", "multi_intent.py", "train_speed.py", "gpu_train.py",
    "open_world_parts.py", "held_out_split.py", "adapted_encoder.py",
])
def test_shared_data_benchmarks_say_they_skip_without_the_shared_folder(script: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script)],
        env={**os.environ, "SHARED_DIR": str(tmp_path / "absent")}, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "skipping" in result.stdout
