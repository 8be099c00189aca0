"""Warnings about training data that trains but looks wrong: they name the intents involved."""

from typing import List

from bert_intent.data_checks import training_data_warnings
from tests.helpers import TRAIN, pairs


def warnings_for(data: dict) -> List[str]:
    return training_data_warnings(*pairs(data))


def test_clean_data_gives_no_warning() -> None:
    assert warnings_for(TRAIN) == []


def test_the_same_example_under_two_intents_is_named_with_both_intents() -> None:
    (warning,) = warnings_for({**TRAIN, "music": TRAIN["music"] + ["今天天气怎么样"]})
    assert "'今天天气怎么样' (music, weather)" in warning


def test_an_intent_with_a_single_example_is_named() -> None:
    warnings = warnings_for({"greet": TRAIN["greet"][:5], "goodbye": ["再见"]})
    assert warnings == ["Intent(s) with fewer than 5 examples: 'goodbye' (1). Add varied examples so the model can learn them."]


def test_an_intent_with_20_times_the_examples_of_another_is_named() -> None:
    big = [f"{text}{index}" for index in range(20) for text in TRAIN["weather"][:5]]  # 100 examples
    (warning,) = warnings_for({"weather": big, "greet": TRAIN["greet"][:5]})
    assert "Intent 'weather' has 100 examples, at least 10x as many as 'greet' (5)" in warning
