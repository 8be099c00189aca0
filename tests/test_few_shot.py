"""Few examples per intent, defaults only: the setting most bots start in."""

from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

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


def test_the_pretrained_stand_in_fine_tunes_far_above_chance_from_ten_examples(proxy_checkpoint: Path) -> None:
    model = fine_tune(*pairs(ten_per_intent(list(TRAIN))), settings.validate({"model_name": str(proxy_checkpoint), "device": "cpu"}))
    assert accuracy(model, HELD_OUT) >= 0.8  # chance is 0.2
