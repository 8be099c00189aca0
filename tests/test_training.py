"""Fine-tuning and inference without Rasa, on the tiny BERT loaded exactly like a real checkpoint."""

import json
from pathlib import Path
from typing import Any, Dict

import numpy as np
import pytest
import torch

from bert_intent import settings
from bert_intent.confidence import gibberish
from bert_intent.errors import BertIntentError, ModelLoadError
from bert_intent.model import IntentModel
from bert_intent.training import fine_tune
from tests.helpers import HELD_OUT, TRAIN, head_log_probabilities, pairs

pytestmark = pytest.mark.training


@pytest.fixture(scope="module")
def config(tiny_settings: Dict[str, Any]) -> Dict[str, Any]:
    return settings.validate(tiny_settings)


@pytest.fixture(scope="module")
def trained(config: Dict[str, Any]) -> IntentModel:
    return fine_tune(*pairs(TRAIN), config)


def accuracy(model: IntentModel, data: Dict[str, list]) -> float:
    texts, intents = pairs(data)
    predicted = model.confidences(texts).argmax(axis=1)
    return float(np.mean([model.labels[index] == intent for index, intent in zip(predicted, intents)]))


def test_fine_tuning_learns_held_out_examples(trained: IntentModel) -> None:
    assert trained.labels == sorted(TRAIN)
    assert accuracy(trained, HELD_OUT) >= 0.8  # chance is 0.2


def test_confidences_are_calibrated_forecasts_low_for_gibberish(trained: IntentModel) -> None:
    confidences = trained.confidences(["今天天气怎么样", "放首歌", *gibberish(20, seed=0)])
    assert confidences.shape == (22, len(TRAIN))
    assert np.all((confidences >= 0) & (confidences <= 1))
    assert confidences[:2].max(axis=1).min() > trained.calibration.threshold
    assert confidences[2:].max(axis=1).max() < trained.calibration.threshold
    assert np.all(confidences.sum(axis=1) <= 1 + 1e-6)  # each intent's probability; the rest is "none of them"


def agreement(first: np.ndarray, second: np.ndarray) -> float:
    """Share of rows whose most probable label is the same."""
    return float(np.mean(first.argmax(axis=1) == second.argmax(axis=1)))


def test_float32_save_then_load_gives_the_same_predictions(trained: IntentModel, tmp_path: Path) -> None:
    IntentModel(
        trained.labels, trained.settings.replace(quantize=False), trained.tokenizer, trained.network,
        calibration=trained.calibration, combinations=trained.combinations,
    ).save(tmp_path)
    assert not [path for path in tmp_path.rglob("*") if path.suffix in (".bin", ".pkl", ".pt", ".pth")]
    stored_name = json.loads((tmp_path / "bert_intent.json").read_text(encoding="utf-8"))["settings"]["model_name"]
    assert stored_name == Path(trained.settings.model_name).name  # the training machine's path stays there
    texts, _ = pairs(HELD_OUT)
    expected = trained.confidences(texts)
    for backend in ("torch", "onnx"):
        loaded = IntentModel.load(tmp_path, torch.device("cpu"), backend)
        assert loaded.labels == trained.labels
        np.testing.assert_allclose(loaded.confidences(texts), expected, atol=1e-5, err_msg=backend)


def test_a_loaded_model_predicts_the_same_alone_and_in_a_padded_batch(trained: IntentModel, tmp_path: Path) -> None:
    trained.save(tmp_path)
    loaded = IntentModel.load(tmp_path, torch.device("cpu"), "onnx")
    alone = loaded.confidences(["明天会下雨吗"])[0]
    mixed = loaded.confidences(["你好", "明天会下雨吗", "设一个早上七点的闹钟，顺便放首歌" * 3])[1]
    np.testing.assert_allclose(mixed, alone, atol=1e-2)
    assert mixed.argmax() == alone.argmax()


def test_int8_model_agrees_with_float32_and_is_at_most_half_the_size(trained: IntentModel, tmp_path: Path) -> None:
    float32, int8 = tmp_path / "float32", tmp_path / "int8"
    IntentModel(
        trained.labels, trained.settings.replace(quantize=False), trained.tokenizer, trained.network,
        calibration=trained.calibration, combinations=trained.combinations,
    ).save(float32)
    trained.save(int8)
    assert (int8 / "model.onnx").stat().st_size <= 0.5 * (float32 / "model.onnx").stat().st_size
    texts = pairs(HELD_OUT)[0] + pairs(TRAIN)[0]
    expected = trained.confidences(texts)
    for backend in ("onnx", "torch"):  # torch reads the int8 weights back
        loaded = IntentModel.load(int8, torch.device("cpu"), backend)
        assert agreement(loaded.confidences(texts), expected) >= 0.99, backend


def test_same_data_and_seed_give_the_same_predictions(trained: IntentModel, config: Dict[str, Any]) -> None:
    texts, _ = pairs(HELD_OUT)
    again = fine_tune(*pairs(TRAIN), config)
    np.testing.assert_array_equal(again.confidences(texts), trained.confidences(texts))


def test_batch_order_and_padding_do_not_change_the_prediction(trained: IntentModel) -> None:
    alone = trained.confidences(["明天会下雨吗"])[0]
    mixed = trained.confidences(["你好", "明天会下雨吗", "设一个早上七点的闹钟，顺便放首歌" * 3])[1]
    np.testing.assert_allclose(mixed, alone, atol=1e-5)


def test_very_long_text_is_truncated_not_an_error(trained: IntentModel) -> None:
    probabilities = trained.confidences(["明天会下雨吗" * 20_000])
    assert probabilities.shape == (1, len(TRAIN))


def test_max_length_above_the_checkpoint_limit_is_capped(config: Dict[str, Any]) -> None:
    texts, intents = pairs({"greet": TRAIN["greet"][:3], "music": TRAIN["music"][:3]})
    model = fine_tune(texts, intents, config.replace(epochs=1, max_length=4096))
    assert model.settings.max_length == 64  # the tiny BERT's max_position_embeddings
    assert model.confidences(["放首歌" * 100]).shape == (1, 2)


def test_a_single_intent_needs_no_network(config: Dict[str, Any], tmp_path: Path) -> None:
    model = fine_tune(["你好", "您好"], ["greet", "greet"], config.replace(model_name="never-loaded/model"))
    assert model.network is None
    np.testing.assert_array_equal(model.confidences(["随便什么", "x", "？？"]), [[1.0], [1.0], [0.0]])
    model.save(tmp_path)
    assert IntentModel.load(tmp_path, torch.device("cpu"), "onnx").labels == ["greet"]


def test_unloadable_model_name_is_one_clear_error(config: Dict[str, Any]) -> None:
    with pytest.raises(ModelLoadError) as raised:
        fine_tune(["你好", "放首歌"], ["greet", "music"], config.replace(model_name="no-such-org/bert-typo"))
    message = str(raised.value)
    assert "'no-such-org/bert-typo'" in message
    assert "set `model_name` to that directory" in message and "HF_ENDPOINT" in message


@pytest.mark.parametrize("content", ["{not json", '{"labels": ["a", "b"]}', "[]"])
def test_unreadable_metadata_is_a_clear_load_error(tmp_path: Path, content: str) -> None:
    (tmp_path / "bert_intent.json").write_text(content, encoding="utf-8")
    with pytest.raises(ModelLoadError, match=r"bert_intent\.json.*Retrain the model with `rasa train`"):
        IntentModel.load(tmp_path, torch.device("cpu"), "onnx")


def test_training_can_continue_from_a_trained_model(trained: IntentModel, config: Dict[str, Any]) -> None:
    texts, _ = pairs(HELD_OUT)
    before = trained.confidences(texts)
    # Continuing with a vanishing learning rate must leave the trained network's heads as they were.
    continued = fine_tune(*pairs(TRAIN), config.replace(epochs=1, learning_rate=1e-12), start_from=trained)
    for head in ("encoder_log_probs", "ngram_log_probs"):
        np.testing.assert_allclose(head_log_probabilities(continued, texts, head), head_log_probabilities(trained, texts, head), atol=1e-5)
    # The heads' weights (and so the calibration) are fitted again, on one epoch's held-out outputs where
    # the first run had cross-fitted them over its 40 (cross_fit.py): close, not equal.
    np.testing.assert_allclose(continued.confidences(texts), before, atol=1e-2)
    np.testing.assert_array_equal(continued.confidences(texts).argmax(axis=1), before.argmax(axis=1))
    assert accuracy(continued, HELD_OUT) >= 0.8
    assert continued.network is not trained.network  # the model continued from is left as it was
    np.testing.assert_array_equal(trained.confidences(texts), before)


def test_continuing_with_changed_intents_names_them(trained: IntentModel, config: Dict[str, Any]) -> None:
    data = {**{intent: TRAIN[intent] for intent in TRAIN if intent != "alarm"}, "news": ["今天有什么新闻"]}
    with pytest.raises(BertIntentError, match=r"intents changed \(added: news; removed: alarm\)"):
        fine_tune(*pairs(data), config, start_from=trained)
