"""Shared fixtures: a tiny random-weight BERT saved like a real checkpoint, and fast training settings."""

import os

# The Hub is unreachable in CI: fail at once instead of retrying for a minute. Set before transformers
# is imported, since huggingface_hub reads it then; subprocesses (the rasa CLI) inherit it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")

from pathlib import Path  # noqa: E402
from typing import Any, Dict  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from bert_intent.checkpoints import build_from_scratch  # noqa: E402
from tests.helpers import characters  # noqa: E402


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT with a character vocabulary, saved with `save_pretrained` like bert-base-chinese."""
    directory = tmp_path_factory.mktemp("tiny-bert")
    with torch.random.fork_rng():  # the same weights in every run, so a test cannot pass by luck
        torch.manual_seed(0)
        tokenizer, network = build_from_scratch(characters(), ["unused"], "tiny", max_length=64)
    network.encoder.save_pretrained(directory)  # the encoder alone, as a pretrained checkpoint is published
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def proxy_checkpoint() -> Path:
    """The pretrained Chinese BERT-mini standing in for bert-base-chinese (../shared, beside the repository)."""
    path = Path(__file__).resolve().parents[2] / "shared" / "models" / "zh-bert-mini-proxy"
    if not (path / "config.json").is_file():
        pytest.skip(f"the pretrained stand-in checkpoint is not in {path}")
    return path


@pytest.fixture(scope="session")
def tiny_settings(tiny_bert: Path) -> Dict[str, Any]:
    """Component config that trains the tiny BERT to fit the test data in seconds on a CPU."""
    return {"model_name": str(tiny_bert), "epochs": 40, "batch_size": 8, "learning_rate": 2e-3, "device": "cpu"}


@pytest.fixture(autouse=True)
def _own_rasa_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own Rasa training cache."""
    monkeypatch.setenv("RASA_CACHE_DIRECTORY", str(tmp_path / ".rasa-cache"))
