"""Few examples per intent, defaults only: the setting most bots start in."""

from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import torch

from bert_intent import settings
from bert_intent.model import IntentModel
from bert_intent.training import fine_tune
from tests.helpers import HELD_OUT, TRAIN, pairs

pytestmark = pytest.mark.training


def accuracy(model: IntentModel, data: Dict[str, List[str]]) -> float:
    texts, intents = pairs(data)
    predicted = model.confidences(texts).argmax(axis=1)
    return float(np.mean([model.labels[index] == intent for index, intent in zip(predicted, intents)]))


def ten_per_intent(intents: List[str]) -> Dict[str, List[str]]:
    return {intent: TRAIN[intent][:10] for intent in intents}


def test_four_intents_with_ten_examples_each_learn_with_only_model_name_set(tiny_bert: Path) -> None:
    intents = ["weather", "alarm", "music", "book_ticket"]
    model = fine_tune(*pairs(ten_per_intent(intents)), settings.validate({"model_name": str(tiny_bert), "device": "cpu"}))
    assert model.summary["epochs"] == 50 and model.summary["validation_examples"] == 4  # 3 steps per epoch, 1 held out each
    assert accuracy(model, {intent: HELD_OUT[intent] for intent in intents}) >= 0.75  # chance is 0.25


@pytest.fixture(scope="module")
def stand_in(proxy_checkpoint: Path) -> IntentModel:
    """The stand-in fine-tuned on ten examples per intent, and a music example without a word: ♪."""
    data = ten_per_intent(list(TRAIN))
    data["music"] = data["music"] + ["♪"]
    return fine_tune(*pairs(data), settings.validate({"model_name": str(proxy_checkpoint), "device": "cpu"}))


def test_the_pretrained_stand_in_fine_tunes_far_above_chance_from_ten_examples(stand_in: IntentModel) -> None:
    assert accuracy(stand_in, HELD_OUT) >= 0.8  # chance is 0.2


def test_a_message_without_a_word_is_none_of_them_unless_the_bot_taught_its_marks(
    stand_in: IntentModel, tmp_path: Path
) -> None:
    stand_in.save(tmp_path)
    unsaid, said = ["？？？", "。。。", "😂", "☺", "♪？"], ["♪♪", "放首歌！"]  # the vocabulary reads every mark here
    for model in (stand_in, IntentModel.load(tmp_path, torch.device("cpu"), "onnx")):
        confidences = model.confidences(unsaid + said)
        assert not confidences[: len(unsaid)].any()
        assert confidences[len(unsaid):].sum(axis=1).min() > 0
