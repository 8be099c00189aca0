"""The Rasa component in-process: config checks, training, output structure, persistence, edge cases."""

from pathlib import Path
from typing import Any, Dict, List

import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.classifiers.fallback_classifier import FallbackClassifier
from rasa.shared.exceptions import InvalidConfigException, RasaException
from rasa.shared.nlu.constants import INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

import bert_intent
from bert_intent import BertIntentClassifier
from bert_intent.component import RECOMMENDED_THRESHOLD
from bert_intent.fallback import BertFallbackClassifier
from tests.helpers import HELD_OUT, TRAIN, Project, messages, pairs, parsed_by_rasa, training_data

pytestmark = pytest.mark.training


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, tiny_settings: Dict[str, Any]) -> Project:
    return Project(tmp_path_factory.mktemp("storage"), tiny_settings)


@pytest.fixture(scope="module")
def trained(project: Project) -> BertIntentClassifier:
    component = project.create()
    component.train(training_data(TRAIN))
    return component


def test_a_four_intent_ten_example_bots_rankings_are_probabilities(tmp_path: Path, tiny_settings: Dict[str, Any]) -> None:
    small = {intent: examples[:10] for intent, examples in list(TRAIN.items())[:4]}
    component = Project(tmp_path, tiny_settings).create(ranking_length=0)
    component.train(training_data(small))
    texts = [text for examples in HELD_OUT.values() for text in examples] + ["帮我", "帮我asdfgh", "今天股市怎么样"]
    for message in component.process(messages(*texts)):
        confidences = [entry["confidence"] for entry in message.get(INTENT_RANKING_KEY)]
        assert len(confidences) == 4 and sum(confidences) <= 1 + 1e-6  # each intent's probability, the rest "none"
        assert confidences == sorted(confidences, reverse=True)
        assert message.get(INTENT)["confidence"] == confidences[0]


def test_importable_from_the_top_package() -> None:
    assert bert_intent.BertIntentClassifier is BertIntentClassifier


def test_unknown_key_is_rejected_when_created(project: Project) -> None:
    with pytest.raises(InvalidConfigException, match="unknown config key\\(s\\) 'learning_rat'"):
        project.create(learning_rat=1e-3)


def test_invalid_value_is_rejected_when_created(project: Project) -> None:
    with pytest.raises(InvalidConfigException, match="'ranking_length' must be an integer >= 0"):
        project.create(ranking_length=-3)


def test_process_sets_intent_and_ranking_for_rasa(trained: BertIntentClassifier) -> None:
    texts, intents = pairs(HELD_OUT)
    processed = trained.process(messages(*texts))
    correct = 0
    for message, expected in zip(processed, intents):
        intent, ranking = message.get(INTENT), message.get(INTENT_RANKING_KEY)
        assert set(intent) == {"name", "confidence"}
        assert type(intent["confidence"]) is float  # numpy floats crash `rasa test nlu`
        assert [entry["name"] for entry in ranking][0] == intent["name"]
        assert ranking[0]["confidence"] == intent["confidence"]
        confidences = [entry["confidence"] for entry in ranking]
        assert confidences == sorted(confidences, reverse=True) and len(ranking) == len(TRAIN)
        assert all(type(confidence) is float for confidence in confidences)
        assert {INTENT, INTENT_RANKING_KEY} <= set(message.as_dict_nlu())  # add_to_output
        correct += intent["name"] == expected
    assert correct / len(intents) >= 0.8


@pytest.mark.parametrize("ranking_length, expected", [(2, 2), (0, len(TRAIN))])
def test_ranking_length_limits_the_ranking(project: Project, trained: BertIntentClassifier, ranking_length: int, expected: int) -> None:
    component = project.load()
    component.config = component.config.replace(ranking_length=ranking_length)
    assert len(component.process(messages("放首歌"))[0].get(INTENT_RANKING_KEY)) == expected


def test_persist_then_load_keeps_the_top_intents(project: Project, trained: BertIntentClassifier) -> None:
    texts, _ = pairs(HELD_OUT)
    before = [message.get(INTENT)["name"] for message in trained.process(messages(*texts))]
    loaded = [message.get(INTENT_RANKING_KEY) for message in project.load().process(messages(*texts))]
    assert [ranking[0]["name"] for ranking in loaded] == before  # the saved weights are int8, the trained float32
    assert [message.get(INTENT_RANKING_KEY) for message in project.load().process(messages(*texts))] == loaded


@pytest.mark.parametrize("backend, finetuning, runs_on", [
    ("auto", False, "onnx"), ("onnx", False, "onnx"), ("torch", False, "torch"), ("auto", True, "torch"),
])
def test_the_backend_decides_how_a_loaded_model_runs(
    project: Project, trained: BertIntentClassifier, backend: str, finetuning: bool, runs_on: str
) -> None:
    context = ExecutionContext(GraphSchema({}), node_name="bert_intent", is_finetuning=finetuning)
    config = {**project.config, "inference_backend": backend}
    model = BertIntentClassifier.load(config, project.storage, project.resource, context)._model
    assert (model.session is not None, model.network is not None) == (runs_on == "onnx", runs_on == "torch")
    assert model.confidences(["放首歌"]).argmax() == model.labels.index("music")


def test_empty_whitespace_and_unreadable_messages_get_no_intent(trained: BertIntentClassifier) -> None:
    # Emoji and Latin letters are outside the test vocabulary: the tokenizer reads them as [UNK] only.
    processed = trained.process(messages("", "   \n\t", None, "🙂🙂", "asdf", "放首歌", "放首歌🙂"))
    for message in processed[:5]:
        assert message.get(INTENT) == {"name": None, "confidence": 0.0}
        assert message.get(INTENT_RANKING_KEY) == []
    assert [message.get(INTENT)["name"] for message in processed[5:]] == ["music", "music"]


def test_fallback_classifier_takes_over_below_its_threshold(trained: BertIntentClassifier, tmp_path: Path) -> None:
    confidence = trained.process(messages("放首歌"))[0].get(INTENT)["confidence"]
    for threshold, expected in [(confidence - 0.01, "music"), (min(confidence + 0.01, 1.0), "nlu_fallback")]:
        fallback = FallbackClassifier.create(
            {**FallbackClassifier.get_default_config(), "threshold": threshold},
            LocalModelStorage(tmp_path), Resource("fallback"), ExecutionContext(GraphSchema({})),
        )
        assert fallback.process(trained.process(messages("放首歌")))[0].get(INTENT)["name"] == expected


def test_bert_fallback_classifier_falls_back_below_the_threshold_training_recommended(
    trained: BertIntentClassifier, tmp_path: Path
) -> None:
    threshold = trained._model.calibration.threshold
    processed = trained.process(messages("放首歌", "明天会下雨吗", "", "帮我", "帮我asdfgh", "今天股市怎么样"))
    assert {type(message.get(RECOMMENDED_THRESHOLD)) for message in processed} == {float}  # not numpy: Rasa serialises it
    assert {message.get(RECOMMENDED_THRESHOLD) for message in processed} == {threshold}
    unsure = [message.get(INTENT)["confidence"] < threshold for message in processed]
    fallback = BertFallbackClassifier.create(
        {**BertFallbackClassifier.get_default_config(), "ambiguity_threshold": 0.0},
        LocalModelStorage(tmp_path), Resource("fallback"), ExecutionContext(GraphSchema({})),
    )
    assert [message.get(INTENT)["name"] == "nlu_fallback" for message in fallback.process(processed)] == unsure
    assert unsure[2] and not unsure[0]  # the empty message falls back, a clear one is kept


def test_examples_without_text_are_ignored(project: Project, tmp_path: Path) -> None:
    data = training_data({"greet": TRAIN["greet"][:4], "music": TRAIN["music"][:4]})
    data.training_examples.extend([Message(data={INTENT: "greet"}), Message(data={TEXT: "  ", INTENT: "weather"})])
    component = Project(tmp_path, {**project.config, "epochs": 1}).create()
    component.train(data)
    assert component._model.labels == ["greet", "music"]


def test_retrieval_intents_are_learned_as_the_intent_before_the_slash(project: Project, tmp_path: Path) -> None:
    # As DIET: `chitchat/ask_name` is intent `chitchat`; ResponseSelector picks the response key.
    data = parsed_by_rasa({
        "greet": TRAIN["greet"][:4],
        "chitchat/ask_name": ["你叫什么名字", "你是谁", "怎么称呼你"],
        "chitchat/ask_age": ["你几岁了", "你多大了", "你今年几岁"],
    })
    component = Project(tmp_path, {**project.config, "epochs": 1}).create()
    component.train(data)
    assert component._model.labels == ["chitchat", "greet"]


@pytest.mark.parametrize("tokenizer_splits", [True, False])
def test_multi_intents_are_joined_by_the_tokenizers_split_symbol_where_it_splits_intents(
    project: Project, tmp_path: Path, tokenizer_splits: bool
) -> None:
    # Rasa's way: the tokenizer's intent_tokenization_flag and intent_split_symbol declare multi-intents.
    from rasa.nlu.tokenizers.jieba_tokenizer import JiebaTokenizer

    data = training_data({"weather": TRAIN["weather"][:4], "alarm": TRAIN["alarm"][:4], "weather__alarm": ["明天会下雨吗，顺便设个七点的闹钟"]})
    tokenizer_config = {"intent_tokenization_flag": tokenizer_splits, "intent_split_symbol": "__"}
    JiebaTokenizer.create(
        {**JiebaTokenizer.get_default_config(), **tokenizer_config}, project.storage, Resource("tokenizer"), project.context
    ).process_training_data(data)
    component = Project(tmp_path, {**project.config, "epochs": 1}).create()
    component.train(data)
    joined = [intent.name for intent in component._model.joined]
    assert (joined, component._model.labels) == (
        (["weather__alarm"], ["alarm", "weather"]) if tokenizer_splits else ([], ["alarm", "weather", "weather__alarm"])
    )


def test_no_intents_skips_training_with_a_warning(project: Project, tmp_path: Path) -> None:
    other = Project(tmp_path, project.config)
    with pytest.warns(UserWarning, match="no intent examples"):
        other.create().train(TrainingData([Message(data={TEXT: "只有文本没有意图"})]))
    processed = other.load().process(messages("放首歌"))
    assert processed[0].get(INTENT) is None and processed[0].get(INTENT_RANKING_KEY) is None


def test_a_single_intent_is_predicted_with_full_confidence(project: Project, tmp_path: Path) -> None:
    other = Project(tmp_path, {**project.config, "model_name": "never-loaded/model"})
    other.create().train(training_data({"greet": TRAIN["greet"]}))
    message = other.load().process(messages("明天天气如何"))[0]
    assert message.get(INTENT) == {"name": "greet", "confidence": 1.0}
    assert message.get(INTENT_RANKING_KEY) == [{"name": "greet", "confidence": 1.0}]


def test_unloadable_model_name_fails_training_with_a_rasa_error(project: Project, tmp_path: Path) -> None:
    component = Project(tmp_path, {**project.config, "model_name": "bert-base-chinese"}).create()
    with pytest.raises(RasaException, match="could not load the pretrained model 'bert-base-chinese'"):
        component.train(training_data({"greet": ["你好"], "music": ["放首歌"]}))
