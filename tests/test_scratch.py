"""A BERT built from scratch (`pretrained: false`): vocabulary, shapes, and that it learns offline."""

from typing import Any, Dict

import numpy as np
import pytest

from bert_intent import settings
from bert_intent.checkpoints import SIZE_PRESETS, build_from_scratch, character_vocabulary
from bert_intent.training import fine_tune
from tests.helpers import HELD_OUT, TRAIN, pairs


def test_every_character_of_the_training_texts_is_in_the_vocabulary() -> None:
    texts = ["帮我订3张票！", "播放 Taylor Swift 的歌", "明天臺北會下雨嗎"]
    tokenizer, _ = build_from_scratch(texts, ["a", "b"], "tiny", max_length=32)
    for text in texts:
        assert "[UNK]" not in tokenizer.tokenize(text)
    assert tokenizer.tokenize("swift") == ["s", "##w", "##i", "##f", "##t"]  # lower-cased, spelled out
    assert tokenizer.tokenize("龘") == ["[UNK]"]


def test_the_vocabulary_starts_with_the_special_tokens() -> None:
    vocabulary = character_vocabulary(["你好"])
    assert list(vocabulary)[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert set(vocabulary) - {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"} == {"你", "好"}


@pytest.mark.parametrize("size", SIZE_PRESETS)
def test_size_presets_set_the_network_shape(size: str) -> None:
    _, network = build_from_scratch(["你好"], ["a", "b", "c"], size, max_length=40)
    assert network.config.num_hidden_layers == SIZE_PRESETS[size]["num_hidden_layers"]
    assert network.config.hidden_size == SIZE_PRESETS[size]["hidden_size"]
    assert network.config.max_position_embeddings == 40
    assert network.config.num_labels == 3


@pytest.fixture(scope="module")
def from_scratch() -> Dict[str, Any]:
    return settings.validate(
        {"pretrained": False, "scratch_size": "tiny", "epochs": 40, "batch_size": 8, "learning_rate": 2e-3, "device": "cpu",
         "model_name": "never-loaded/model"}
    )


@pytest.mark.training
def test_a_model_trained_from_scratch_learns_without_any_checkpoint(from_scratch: Dict[str, Any]) -> None:
    model = fine_tune(*pairs(TRAIN), from_scratch)
    texts, intents = pairs(HELD_OUT)
    predicted = [model.labels[index] for index in model.confidences(texts).argmax(axis=1)]
    assert np.mean([guess == intent for guess, intent in zip(predicted, intents)]) >= 0.8  # chance is 0.2
