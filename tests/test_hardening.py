"""Hard to break: any message text, messy training data, damaged or foreign model files, unsafe inputs."""

import importlib.util
import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest
import tokenizers
import tokenizers.processors
import torch
import transformers
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st
from rasa.shared.nlu.constants import ENTITIES, INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bert_intent import BertIntentClassifier, checkpoints, settings
from bert_intent.errors import BertIntentError, ModelLoadError
from bert_intent.model import IntentModel
from bert_intent.training import fine_tune
from tests.helpers import (
    ENTITY_HELD_OUT, ENTITY_TRAIN, TRAIN, Project, annotated, characters, messages, pairs, parsed_by_rasa, training_data,
)

pytestmark = pytest.mark.training

REPOSITORY = Path(__file__).parent.parent

ODD_TEXTS = [
    "", " ", "\t\n", "\x00", "\u200b\u200d\ufeff", "\u202e\u05e9\u05dc\u05d5\u05dd", "مرحبا بك", "😀" * 500,
    "👨‍👩‍👧‍👦🇨🇳", "a\ud800b", "\udfff", "订机票 book a flight 123 ４５６", "Ｈｅｌｌｏ，世界！", "\x1b[31mERROR\x1b[0m",
    "Traceback (most recent call last):\n  File \"x.py\", line 1\n" * 50, "明天会下雨吗" * 20_000,
]
unicode_text = st.text(st.characters(codec=None), max_size=200)  # every code point, lone surrogates too
message_text = st.one_of(unicode_text, st.sampled_from(ODD_TEXTS))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tiny_settings: Dict[str, Any]) -> BertIntentClassifier:
    """The component as `rasa run` has it: trained, persisted, loaded (ONNX Runtime, int8)."""
    project = Project(tmp_path_factory.mktemp("storage"), tiny_settings)
    project.create().train(training_data(TRAIN))
    return project.load()


def check_result(message: Any, labels: List[str]) -> None:
    intent, ranking = message.get(INTENT), message.get(INTENT_RANKING_KEY)
    assert set(intent) == {"name", "confidence"} and type(intent["confidence"]) is float
    if intent["name"] is None:
        assert intent["confidence"] == 0.0 and ranking == []
        return
    assert intent["name"] in labels and 0.0 <= intent["confidence"] <= 1.0
    assert ranking[0] == intent and all(type(entry["confidence"]) is float for entry in ranking)
    confidences = [entry["confidence"] for entry in ranking]
    assert confidences == sorted(confidences, reverse=True)


@pytest.mark.parametrize("text", ODD_TEXTS)
def test_odd_messages_get_a_valid_result(served: BertIntentClassifier, text: str) -> None:
    check_result(served.process(messages(text))[0], served._model.labels)


def test_a_message_with_nothing_visible_gets_no_intent(served: BertIntentClassifier) -> None:
    for text in ("\x00", "\u200b\u200d\ufeff", " \u3000 ", "\udfff"):
        assert served.process(messages(text))[0].get(INTENT)["name"] is None, repr(text)


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=message_text)
def test_any_single_message_gets_a_valid_result(served: BertIntentClassifier, text: str) -> None:
    check_result(served.process(messages(text))[0], served._model.labels)


@hypothesis_settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(message_text, min_size=2, max_size=8))
def test_batching_never_changes_a_messages_prediction(served: BertIntentClassifier, texts: List[str]) -> None:
    together = served.process(messages(*texts))
    for text, message in zip(texts, together):
        check_result(message, served._model.labels)
        assert message.get(INTENT_RANKING_KEY) == served.process(messages(text))[0].get(INTENT_RANKING_KEY)


def test_messy_training_data_trains(tmp_path: Path, tiny_settings: Dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    """Duplicates, non-text examples, unicode intent names, a one-example intent, a 50 000-character example."""
    project = Project(tmp_path, {**tiny_settings, "epochs": 3})
    data = {
        "问候/打招呼 😀": TRAIN["greet"] + TRAIN["greet"][:3],  # duplicates
        "música": TRAIN["music"] + ["放首歌" * 25_000],
        "weather": TRAIN["weather"],
        "only_one": ["这是唯一的例子"],
    }
    not_text = [Message(data={TEXT: value, INTENT: "weather"}) for value in (None, 42, ["a list"])]  # ignored
    with caplog.at_level(logging.INFO, logger="bert_intent"):
        project.create().train(TrainingData(training_data(data).training_examples + not_text))
    assert "3 held out" in caplog.text  # one of each intent with 4 examples or more, none of 'only_one'
    component = project.load()
    assert sorted(component._model.labels) == sorted(data)
    check_result(component.process(messages("放首歌"))[0], component._model.labels)


def test_thousands_of_examples_per_intent_train(tiny_settings: Dict[str, Any]) -> None:
    data = {intent: [f"{text}{number}" for number in range(150) for text in texts] for intent, texts in TRAIN.items()}
    model = fine_tune(*pairs(data), settings.validate({**tiny_settings, "epochs": 1, "batch_size": 64}))
    assert min(len(examples) for examples in data.values()) >= 2000
    assert model.summary["train_examples"] + model.summary["validation_examples"] == sum(map(len, data.values()))


def test_an_example_that_is_not_text_is_named(tiny_settings: Dict[str, Any]) -> None:
    with pytest.raises(BertIntentError, match=r"Training example 1 \(intent 'music'\) is 42, not text"):
        fine_tune(["你好", 42], ["greet", "music"], settings.validate(tiny_settings))


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory, tiny_settings: Dict[str, Any]) -> Path:
    directory = tmp_path_factory.mktemp("saved")
    fine_tune(*pairs(TRAIN), settings.validate({**tiny_settings, "epochs": 2})).save(directory)
    return directory


def damaged_copy(saved: Path, tmp_path: Path, damage: Callable[[Path], None]) -> Path:
    copy = tmp_path / "model"
    copy.mkdir()
    for file in saved.iterdir():
        (copy / file.name).write_bytes(file.read_bytes())
    damage(copy)
    return copy


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def edit_metadata(change: Callable[[Dict[str, Any]], None]) -> Callable[[Path], None]:
    def damage(directory: Path) -> None:
        metadata = json.loads((directory / "bert_intent.json").read_text(encoding="utf-8"))
        change(metadata)
        (directory / "bert_intent.json").write_text(json.dumps(metadata), encoding="utf-8")
    return damage


@pytest.mark.parametrize("backend", ["onnx", "torch"])
@pytest.mark.parametrize("damage, names, says", [
    (lambda d: truncate(d / "model.onnx"), "model.onnx", "damaged"),
    (lambda d: (d / "model.onnx").unlink(), "model.onnx", "is missing"),
    (lambda d: (d / "tokenizer.json").unlink(), "tokenizer.json", "is missing"),
    (lambda d: (d / "bert_intent.json").unlink(), "bert_intent.json", "Cannot read"),
    (edit_metadata(lambda m: m["labels"].append("extra")), "lists 6", "different models"),
    (edit_metadata(lambda m: m.update(format_version=1)), "bert_intent.json", "another version of bert-intent"),
    (edit_metadata(lambda m: m.update(format_version=4)), "is format 4", "Retrain it with `rasa train`"),
    (edit_metadata(lambda m: m.update(entity_types=[{"entity": "city"}])), "3 entity tags", "different models"),
])
def test_damaged_or_foreign_model_files_are_named_in_the_error(
    saved: Path, tmp_path: Path, backend: str, damage: Callable[[Path], None], names: str, says: str
) -> None:
    with pytest.raises(ModelLoadError) as raised:
        IntentModel.load(damaged_copy(saved, tmp_path, damage), torch.device("cpu"), backend)
    assert names in str(raised.value) and says in str(raised.value)
    assert "rasa train" in str(raised.value)


def test_a_truncated_config_is_named_for_the_torch_backend(saved: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        IntentModel.load(damaged_copy(saved, tmp_path, lambda d: truncate(d / "config.json")), torch.device("cpu"), "torch")


def tiny_checkpoint(architecture: str, tokenizer: transformers.PreTrainedTokenizerBase, directory: Path) -> Path:
    """A tiny random encoder of `architecture` for `tokenizer`, saved with it as a checkpoint is published."""
    size = {"vocab_size": len(tokenizer)}
    shape = {**size, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    configs = {
        "distilbert": transformers.DistilBertConfig(**size, dim=32, n_layers=2, n_heads=2, hidden_dim=64),
        "roberta": transformers.RobertaConfig(**shape, pad_token_id=tokenizer.pad_token_id, max_position_embeddings=130),
        "albert": transformers.AlbertConfig(**shape, embedding_size=16),
        "electra": transformers.ElectraConfig(**shape, embedding_size=16),
        "t5": transformers.T5Config(**size, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2),
        "gpt2": transformers.GPT2Config(**size, n_embd=32, n_layer=2, n_head=2, n_positions=130),
    }
    with torch.random.fork_rng():
        torch.manual_seed(0)
        transformers.AutoModel.from_config(configs[architecture]).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.mark.parametrize("architecture", ["distilbert", "roberta", "albert", "electra", "gpt2"])
def test_other_bert_family_encoders_train_and_serve(architecture: str, tiny_bert: Path, tmp_path: Path) -> None:
    checkpoint = tiny_checkpoint(architecture, transformers.AutoTokenizer.from_pretrained(tiny_bert), tmp_path / architecture)
    project = Project(tmp_path, {"model_name": str(checkpoint), "epochs": 2, "batch_size": 8, "device": "cpu"})
    project.create().train(training_data({intent: examples[:6] for intent, examples in TRAIN.items()}))
    for message in project.load().process(messages("明天会下雨吗", "放首歌")):
        check_result(message, list(TRAIN))


def test_a_byte_level_bpe_tokenizer_finds_entities_on_character_boundaries(tmp_path: Path) -> None:
    # RoBERTa-style byte-level BPE reads a Chinese character as up to three bytes, so tokens and characters differ.
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator(characters() + annotated(ENTITY_TRAIN)[0], vocab_size=600, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.post_processor = tokenizers.processors.RobertaProcessing(("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")))
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>",
        mask_token="<mask>", cls_token="<s>", sep_token="</s>",
    )
    checkpoint = tiny_checkpoint("roberta", tokenizer, tmp_path / "byte-level")
    project = Project(tmp_path, {"model_name": str(checkpoint), "epochs": 30, "batch_size": 8, "learning_rate": 2e-3, "device": "cpu"})
    project.create().train(parsed_by_rasa(ENTITY_TRAIN))
    held_out, _, _ = annotated(ENTITY_HELD_OUT)
    component = project.load()
    processed = component.process(messages(*held_out))
    found = [(text, entity) for text, message in zip(held_out, processed) for entity in message.get(ENTITIES)]
    assert found and all(entity["value"] == text[entity["start"] : entity["end"]] for text, entity in found)
    assert not component._model.whole_words  # its words are whole runs of Chinese: the annotations lie inside them


def test_an_encoder_decoder_checkpoint_is_refused_by_name(tiny_bert: Path, tmp_path: Path) -> None:
    checkpoint = tiny_checkpoint("t5", transformers.AutoTokenizer.from_pretrained(tiny_bert), tmp_path / "t5")
    with pytest.raises(ModelLoadError, match="is an encoder-decoder model \\(t5\\).*Set model_name to an encoder"):
        fine_tune(["你好", "放首歌"], ["greet", "music"], settings.validate({"model_name": str(checkpoint), "epochs": 1}))


@pytest.mark.skipif(importlib.util.find_spec("sentencepiece") is not None, reason="converts SentencePiece models")
def test_a_tokenizer_shipped_only_as_a_sentencepiece_model_says_how_to_convert_it(tmp_path: Path) -> None:
    # As some older checkpoints are published: spiece.model, no tokenizer.json.
    transformers.AlbertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2).save_pretrained(tmp_path)
    (tmp_path / "spiece.model").write_bytes(b"\x00" * 64)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "AlbertTokenizer"}))
    with pytest.raises(ModelLoadError, match=r"only the SentencePiece model spiece\.model.*sentencepiece<0\.2\.3.*save_pretrained"):
        checkpoints.load_pretrained(str(tmp_path), ["greet", "music"], 1)


def test_weights_only_as_a_pickle_are_refused_with_how_to_convert_them(tiny_bert: Path, tmp_path: Path) -> None:
    checkpoint = shutil.copytree(tiny_bert, tmp_path / "pickled")
    model = transformers.AutoModel.from_pretrained(checkpoint)
    torch.save(model.state_dict(), checkpoint / "pytorch_model.bin")  # as older checkpoints are published
    (checkpoint / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match=r"only as pytorch_model\.bin, a pickle file.*save_pretrained"):
        checkpoints.load_pretrained(str(checkpoint), ["greet", "music"], 1)


@pytest.mark.parametrize("architecture, warned", [("gpt2", True), ("roberta", False)])
def test_a_decoder_only_checkpoint_is_loaded_with_a_warning(
    architecture: str, warned: bool, tiny_bert: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    checkpoint = tiny_checkpoint(architecture, transformers.AutoTokenizer.from_pretrained(tiny_bert), tmp_path / architecture)
    with caplog.at_level(logging.WARNING, logger="bert_intent.checkpoints"):
        checkpoints.load_pretrained(str(checkpoint), ["greet", "music"], 1)
    assert ("reads text only left to right" in caplog.text) == warned


def test_a_folder_without_config_json_is_named_as_no_hugging_face_checkpoint(tmp_path: Path) -> None:
    for name in ("bert_config.json", "vocab.txt", "bert_model.ckpt.index"):  # Google's original TensorFlow BERT
        (tmp_path / name).write_text("{}")
    with pytest.raises(ModelLoadError, match="has no config.json, so it is not a Hugging Face checkpoint"):
        checkpoints.load_pretrained(str(tmp_path), ["greet", "music"], 1)


@pytest.mark.parametrize("model_name", ["https://example.com/bert", "../outside/model", "bert;rm -rf ~", "pyproject.toml"])
def test_model_name_must_be_a_hub_id_or_a_directory(tiny_settings: Dict[str, Any], model_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPOSITORY)  # where pyproject.toml is a file, not a checkpoint
    config = settings.validate({**tiny_settings, "model_name": model_name})
    with pytest.raises(ModelLoadError, match="neither an existing checkpoint directory nor a Hugging Face model id"):
        fine_tune(["你好", "放首歌"], ["greet", "music"], config)


def test_no_pickle_no_torch_load_no_remote_code_in_the_package() -> None:
    for source in (REPOSITORY / "bert_intent").glob("*.py"):
        code = source.read_text(encoding="utf-8")
        assert not re.search(r"torch\.load\(|import pickle|pickle\.|trust_remote_code\s*=\s*True", code), source.name
