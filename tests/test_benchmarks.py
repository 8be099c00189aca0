"""The benchmarks skip cleanly, with a message, where their evaluation data is absent."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
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
    "open_world_parts.py", "held_out_split.py", "adapted_encoder.py", "cased_tokenizer.py",
    "word_bounded_ngrams.py",
])
def test_shared_data_benchmarks_say_they_skip_without_the_shared_folder(script: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script)],
        env={**os.environ, "SHARED_DIR": str(tmp_path / "absent")}, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "skipping" in result.stdout


def test_the_emulated_fast_int8_kernel_saturates_only_pairs_beyond_16_bits() -> None:
    sys.path.insert(0, str(BENCHMARKS))
    from int8_overflow import exact_product, saturated_product

    activations = np.array([[255, 255, 10, 20, 3]], dtype=np.uint8)  # zero point 100
    weights = np.array([[127, -5], [127, 7], [-128, 9], [1, -2], [50, 4]], dtype=np.int8)
    zero_point = np.array(100, dtype=np.uint8)
    expected = (activations.astype(np.int64) - 100) @ weights.astype(np.int64)
    assert exact_product(activations, weights, zero_point).tolist() == expected.tolist()
    # Column 0's first pair of products, 255 * 127 * 2 = 64 770, is held at 32 767; everything else fits.
    saturated = saturated_product(activations, weights, zero_point)
    assert (expected - saturated).tolist() == [[64770 - 32767, 0]]
