"""BertFallbackClassifier alone, on messages as BertIntentClassifier leaves them (the classifier's own
part, putting its threshold on each message, and the rasa CLI: tests/test_component.py, tests/test_example_bot.py)."""

import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.recipes.recipe import Recipe
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.shared.data import TrainingType
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message

import bert_intent
from bert_intent.component import RECOMMENDED_THRESHOLD
from bert_intent.fallback import BertFallbackClassifier


def fallback(tmp_path: Path, **config: Any) -> BertFallbackClassifier:
    return BertFallbackClassifier.create(
        {**BertFallbackClassifier.get_default_config(), **config},
        LocalModelStorage(tmp_path), Resource("fallback"), ExecutionContext(GraphSchema({})),
    )


def classified(confidences: List[float], threshold: Optional[float]) -> Message:
    """A message as BertIntentClassifier leaves it: its ranking, and its recommended threshold."""
    ranking = [{"name": f"intent_{index}", "confidence": value} for index, value in enumerate(confidences)]
    message = Message(data={TEXT: "消息", INTENT: ranking[0], INTENT_RANKING_KEY: ranking})
    if threshold is not None:
        message.set(RECOMMENDED_THRESHOLD, threshold)
    return message


def intent_of(component: BertFallbackClassifier, message: Message) -> Dict[str, Any]:
    return component.process([message])[0].get(INTENT)


def test_it_falls_back_below_the_threshold_the_classifier_put_on_the_message(tmp_path: Path) -> None:
    component = fallback(tmp_path)
    assert intent_of(component, classified([0.60, 0.05], threshold=0.55))["name"] == "intent_0"
    unsure = component.process([classified([0.50, 0.05], threshold=0.55)])[0]
    assert unsure.get(INTENT) == {"name": "nlu_fallback", "confidence": 0.55}
    assert [entry["name"] for entry in unsure.get(INTENT_RANKING_KEY)] == ["nlu_fallback", "intent_0", "intent_1"]
    # Each message at its own classifier's threshold: one component serves any retrained model.
    assert intent_of(component, classified([0.50, 0.05], threshold=0.45))["name"] == "intent_0"


def test_a_configured_threshold_overrides_the_bots_own(tmp_path: Path) -> None:
    assert intent_of(fallback(tmp_path, threshold=0.4), classified([0.50, 0.05], threshold=0.55))["name"] == "intent_0"
    assert intent_of(fallback(tmp_path, threshold=0.7), classified([0.60, 0.05], threshold=0.55)) == {
        "name": "nlu_fallback", "confidence": 0.7}


def test_without_a_recommended_threshold_it_says_so_once_and_uses_rasas_default(tmp_path: Path) -> None:
    component = fallback(tmp_path)  # e.g. behind another classifier: nothing put a threshold on the messages
    with pytest.warns(UserWarning, match="no recommended threshold; falling back below Rasa's default 0.3"):
        assert intent_of(component, classified([0.25, 0.05], threshold=None)) == {"name": "nlu_fallback", "confidence": 0.3}
        assert intent_of(component, classified([0.35, 0.05], threshold=None))["name"] == "intent_0"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        intent_of(component, classified([0.35, 0.05], threshold=None))


def test_ambiguity_is_rasas(tmp_path: Path) -> None:
    close = classified([0.48, 0.44], threshold=0.3)
    assert intent_of(fallback(tmp_path), close)["name"] == "nlu_fallback"  # default ambiguity_threshold 0.1
    assert intent_of(fallback(tmp_path, ambiguity_threshold=0.0), classified([0.48, 0.44], threshold=0.3))["name"] == "intent_0"


def test_an_empty_message_falls_back_and_one_without_an_intent_is_left_alone(tmp_path: Path) -> None:
    empty = Message(data={TEXT: "", INTENT: {"name": None, "confidence": 0.0}, INTENT_RANKING_KEY: []})
    empty.set(RECOMMENDED_THRESHOLD, 0.55)
    assert intent_of(fallback(tmp_path), empty) == {"name": "nlu_fallback", "confidence": 0.55}
    untouched = fallback(tmp_path).process([Message(data={TEXT: "你好"})])[0]  # training had no intents
    assert untouched.get(INTENT) is None


def loaded_in(pipeline: List[Dict[str, Any]], tmp_path: Path) -> BertFallbackClassifier:
    """The fallback as loading a model trained with `pipeline` creates it: in the graph Rasa builds for serving."""
    config = {"recipe": "default.v1", "language": "zh", "pipeline": pipeline, "policies": []}
    schema = Recipe.recipe_for_name("default.v1").graph_config_for_recipe(config, {}, TrainingType.NLU).predict_schema
    node = next(name for name, node in schema.nodes.items() if node.uses is BertFallbackClassifier)
    return BertFallbackClassifier.create(
        {**BertFallbackClassifier.get_default_config(), **schema.nodes[node].config},
        LocalModelStorage(tmp_path), Resource(node), ExecutionContext(schema, node_name=node),
    )


def test_a_pipeline_without_bert_intent_classifier_before_it_is_refused_unless_it_sets_a_threshold(tmp_path: Path) -> None:
    tokenizer, classifier, falls_back = (
        {"name": "JiebaTokenizer"}, {"name": "bert_intent.BertIntentClassifier"}, {"name": "bert_intent.BertFallbackClassifier"}
    )
    assert loaded_in([tokenizer, classifier, falls_back], tmp_path)
    refused = "no bert_intent.BertIntentClassifier comes before it in the pipeline. Put it after"
    with pytest.raises(InvalidConfigException, match=refused):
        loaded_in([tokenizer, falls_back, classifier], tmp_path)  # before it, no message would have an intent yet
    with pytest.raises(InvalidConfigException, match=refused):
        loaded_in([tokenizer, {"name": "LogisticRegressionClassifier"}, falls_back], tmp_path)
    assert loaded_in([tokenizer, {"name": "LogisticRegressionClassifier"}, {**falls_back, "threshold": 0.6}], tmp_path)


@pytest.mark.parametrize("config, named", [
    ({"threshold": "high"}, "'threshold' must be a number from 0 to 1, or null for the threshold training recommends, not 'high'"),
    ({"threshold": 1.5}, "'threshold' must be a number from 0 to 1, or null"),
    ({"ambiguity_threshold": None}, "'ambiguity_threshold' must be a number from 0 to 1, not None"),
])
def test_a_threshold_that_is_not_a_probability_is_rejected(tmp_path: Path, config: Dict[str, Any], named: str) -> None:
    with pytest.raises(InvalidConfigException, match=named):
        fallback(tmp_path, **config)


def test_importable_from_the_top_package_and_the_recommended_threshold_stays_internal() -> None:
    assert bert_intent.BertFallbackClassifier is BertFallbackClassifier
    assert RECOMMENDED_THRESHOLD not in classified([0.6], threshold=0.5).as_dict(only_output_properties=True)
