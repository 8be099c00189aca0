"""Entities: tags from character annotations, spans from tags, and the trained entity head."""

import logging
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest
import torch

from bert_intent import encoding, entities, parts
from bert_intent.entities import IGNORED, OUTSIDE, EntityType
from bert_intent.errors import BertIntentError
from bert_intent.model import IntentModel
from bert_intent.checkpoints import build_from_scratch
from bert_intent.settings import validate
from bert_intent.training import fine_tune
from tests.helpers import ENTITY_HELD_OUT, ENTITY_TRAIN, annotated, characters

CITY, TIME = EntityType("city"), EntityType("time")
DEPARTURE = EntityType("city", role="departure")


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    # Words of Latin letters or digits are spelled with "##" pieces, as WordPiece splits what it lacks.
    return build_from_scratch(characters() + ["hello", "12345678901"], ["a", "b"], "tiny", max_length=16)[0]


def read(tokenizer: Any, text: str) -> Tuple[List[tuple], List[int]]:
    """The tokens' character offsets, and which tokens continue the word before them."""
    encoded = encoding.tokenize(tokenizer, [text], 16)
    return encoded["offset_mapping"][0], encoded[encoding.WORD_CONTINUES][0]


def test_tags_come_from_character_offsets(tokenizer: Any) -> None:
    text = "从北京去上海"
    annotations = [
        {"start": 1, "end": 3, "value": "北京", "entity": "city", "role": "departure"},
        {"start": 4, "end": 6, "value": "上海", "entity": "city"},
    ]
    types = entities.entity_types([annotations])
    assert types == [CITY, DEPARTURE]
    tags, problems = entities.token_tags(text, read(tokenizer, text)[0], annotations, types)
    begin_city, begin_departure = entities.begin_tag(0), entities.begin_tag(1)
    assert tags == [IGNORED, OUTSIDE, begin_departure, begin_departure + 1, OUTSIDE, begin_city, begin_city + 1, IGNORED]
    assert problems == []


@pytest.mark.parametrize(
    "text, annotation, problem",
    [
        ("北京天气", {"start": 2, "end": 9, "value": "x", "entity": "city"}, "outside the text"),
        ("qqq北京", {"start": 0, "end": 2, "value": "qq", "entity": "city"}, "inside a token"),  # qqq: one [UNK]
        ("北京天气" + "好" * 30, {"start": 20, "end": 22, "value": "好好", "entity": "city"}, "past max_length"),
        ("北京 天气", {"start": 2, "end": 3, "value": " ", "entity": "city"}, "covers no token"),
        ("北京天气", {"start": 0, "end": 2, "value": "北京", "entity": "country"}, "does not know"),
    ],
)
def test_annotations_that_cannot_be_learned_are_described(tokenizer: Any, text: str, annotation: Dict[str, Any], problem: str) -> None:
    tags, problems = entities.token_tags(text, read(tokenizer, text)[0], [annotation], [CITY])
    assert len(problems) == 1 and problem in problems[0]
    assert set(tags) <= {IGNORED, OUTSIDE}


def test_an_overlapping_annotation_is_described_and_the_first_kept(tokenizer: Any) -> None:
    text = "北京天气"
    first = {"start": 0, "end": 2, "value": "北京", "entity": "city"}
    tags, problems = entities.token_tags(text, read(tokenizer, text)[0], [first, {**first, "end": 3}], [CITY])
    assert tags[1:3] == [entities.begin_tag(0), entities.begin_tag(0) + 1]
    assert len(problems) == 1 and "overlaps" in problems[0]


def test_decoding_gives_spans_with_offsets_values_roles_and_confidences(tokenizer: Any) -> None:
    text = "从北京去上海"
    token_offsets, continues = read(tokenizer, text)
    tags = [OUTSIDE, OUTSIDE, 3, 4, OUTSIDE, 1, 2, OUTSIDE]
    probabilities = np.eye(entities.tag_count([CITY, DEPARTURE]))[tags] * 0.9 + 0.02
    found = entities.decode(text, token_offsets, probabilities, continues, [CITY, DEPARTURE])
    assert [(e["entity"], e.get("role"), e["start"], e["end"], e["value"]) for e in found] == [
        ("city", "departure", 1, 3, "北京"), ("city", None, 4, 6, "上海"),
    ]
    assert all(e["confidence_entity"] == pytest.approx(0.92) for e in found)


def test_decoding_keeps_entities_whole() -> None:
    """An inside tag may only follow its own type's begins or inside tag: the best valid sequence wins."""
    # 北 leans to B-departure, 京 to I-city: the valid reading is a departure (0.5 * 0.4 > 0.3 * 0.5).
    probabilities = np.array([
        [0.1, 0.1, 0.2, 0.6, 0.0],  # [CLS]
        [0.0, 0.3, 0.0, 0.5, 0.2],
        [0.0, 0.0, 0.5, 0.1, 0.4],
        [1.0, 0.0, 0.0, 0.0, 0.0],  # [SEP]
    ])
    found = entities.decode("北京", [(0, 0), (0, 1), (1, 2), (0, 0)], probabilities, [0, 0, 0, 0], [CITY, DEPARTURE])
    assert [(e["entity"], e.get("role"), e["value"]) for e in found] == [("city", "departure", "北京")]
    assert found[0]["confidence_entity"] == pytest.approx(0.45)


def test_transitions_are_counted_in_the_training_tags_and_smoothed_over_the_valid_ones() -> None:
    # One type: outside 0, begins 1, inside 2. Two rows: O B I I O and B O (with ignored special tokens).
    rows = [[IGNORED, 0, 1, 2, 2, 0, IGNORED], [IGNORED, 1, 0, IGNORED]]
    transitions = entities.transition_log_probabilities(rows, 3)
    # After "outside" (the start of each row counts as one): O 1, B 2 (add one: 2, 3; I may not follow O).
    np.testing.assert_allclose(np.exp(transitions[0, :2]), [2 / 5, 3 / 5])
    assert transitions[0, 2] == 0  # not a valid transition: `best_tags` forbids it, the score adds nothing
    np.testing.assert_allclose(np.exp(transitions[2]), [2 / 5, 1 / 5, 2 / 5])  # after inside: O 1, B 0, I 1


def test_transitions_join_an_entity_its_tokens_alone_would_split() -> None:
    # 外面的世界 as one song: the tagger leans to "outside" for 的, which splits it in two.
    probabilities = np.array([[0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.55, 0.05, 0.4], [0.1, 0.5, 0.4], [0.1, 0.1, 0.8]])
    offsets = [(0, 0)] + [(index, index + 1) for index in range(5)] + [(0, 0)]
    padded = np.vstack([[1, 0, 0], probabilities, [1, 0, 0]])
    song = EntityType("song")
    alone = entities.decode("外面的世界", offsets, padded, [0] * 7, [song])
    assert [e["value"] for e in alone] == ["外面", "世界"]
    # Titles in training go on after their first tokens far more often than they end there.
    transitions = np.log([[0.8, 0.2, 1.0], [0.05, 0.05, 0.9], [0.3, 0.05, 0.65]]) * np.array([[1, 1, 0], [1, 1, 1], [1, 1, 1]])
    joined = entities.decode("外面的世界", offsets, padded, [0] * 7, [song], transitions=transitions)
    assert [e["value"] for e in joined] == ["外面的世界"]
    # The held-out messages choose the weight of the transitions: the lowest of the best (at 0.25 they
    # add 0.41 to the joined reading, less than the 0.54 its tokens give the split one).
    log_probabilities = [np.log(np.clip(padded, 1e-12, None))]
    assert entities.fit_transition_weight(log_probabilities, [[IGNORED, 1, 2, 2, 2, 2, IGNORED]], transitions) == (0.5, 1.0)
    assert entities.fit_transition_weight(log_probabilities, [[IGNORED, 1, 2, 0, 1, 2, IGNORED]], transitions) == (0.0, 1.0)


def test_an_entity_where_a_long_text_was_cut_is_left_out(tokenizer: Any) -> None:
    text = "从北京去上海"
    token_offsets, continues = read(tokenizer, text)
    tags = [OUTSIDE, OUTSIDE, 3, 4, OUTSIDE, 1, 2, OUTSIDE]
    probabilities = np.eye(entities.tag_count([CITY, DEPARTURE]))[tags] * 0.9 + 0.02
    # Read up to 上 only: 上 may be the start of 上海 or of 上海虹桥, so no city is made of it.
    cut = [*token_offsets[:6], (0, 0)]
    found = entities.decode(text, cut, probabilities[[0, 1, 2, 3, 4, 5, 7]], continues[:7], [CITY, DEPARTURE], cut_short=True)
    assert [e["value"] for e in found] == ["北京"]
    whole = entities.decode(text, token_offsets, probabilities, continues, [CITY, DEPARTURE], cut_short=False)
    assert [e["value"] for e in whole] == ["北京", "上海"]


def test_an_entity_is_made_of_whole_words(tokenizer: Any) -> None:
    text = "订单12345678901"
    token_offsets, continues = read(tokenizer, text)
    assert continues == [0, 0, 0, 0] + [1] * 10 + [0]  # [CLS] 订 单 1 ##2 ... ##1 [SEP]
    # The number's first pieces lean to an order number, its last ones to nothing: found whole, or not at all.
    tags = [OUTSIDE] * 3 + [1] + [2] * 6 + [OUTSIDE] * 5
    probabilities = np.eye(entities.tag_count([CITY]))[tags] * 0.6 + 0.1
    found = entities.decode(text, token_offsets, probabilities, continues, [CITY])
    assert [e["value"] for e in found] == ["12345678901"]
    probabilities[5:10] = probabilities[12]  # now most of it leans to nothing
    assert entities.decode(text, token_offsets, probabilities, continues, [CITY]) == []


def test_entities_are_whole_words_where_no_annotation_begins_or_ends_inside_one(tokenizer: Any) -> None:
    texts = ["订单12345678901到了", "hello北京"]
    whole = [[{"start": 2, "end": 13, "entity": "order"}], [{"start": 5, "end": 7, "entity": "city"}]]

    def whole_words(annotations: List[List[Dict[str, Any]]]) -> bool:
        types = entities.entity_types(annotations)
        return encoding.examples(tokenizer, texts, ["a", "b"], [0, 1], annotations, types, 16)[1]

    assert whole_words(whole)
    # Annotating a number's first digits (or a checkpoint whose words are whole Chinese phrases) keeps tokens.
    assert not whole_words([[{"start": 2, "end": 5, "entity": "order"}], []])


def test_a_second_reading_is_averaged_in_where_it_has_the_same_tokens() -> None:
    offsets = [(0, 0), (0, 1), (1, 2), (2, 3), (0, 0)]
    probabilities = np.array([[1.0, 0.0, 0.0], [0.2, 0.8, 0.0], [0.6, 0.0, 0.4], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    # The parts read alone: 北京 (its [CLS], 北, 京, [SEP]) and 吗 split as another token would be.
    other_offsets = [(0, 0), (0, 1), (1, 2), (0, 0), (2, 4)]
    other = np.array([[0.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    averaged = entities.average_readings(offsets, probabilities, other_offsets, other)
    np.testing.assert_allclose(averaged[1:3], [[0.1, 0.9, 0.0], [0.3, 0.0, 0.7]])
    np.testing.assert_allclose(averaged[[0, 3, 4]], probabilities[[0, 3, 4]])  # special tokens and 吗 keep their own
    assert probabilities[2, 0] == 0.6  # the first reading is not changed


def test_span_f1_counts_exact_spans_only() -> None:
    truth = [[IGNORED, 1, 2, OUTSIDE, IGNORED], [IGNORED, OUTSIDE, IGNORED]]
    assert entities.span_f1(truth, [[0, 1, 2, 0, 0], [0, 0, 0]]) == 1.0
    assert entities.span_f1(truth, [[0, 1, 0, 0, 0], [0, 1, 0]]) == 0.0
    assert entities.span_f1([[IGNORED, OUTSIDE, IGNORED]], [[1, 0, 1]]) == 1.0  # predictions on ignored tokens do not count


@pytest.fixture(scope="module")
def trained(tiny_settings: Dict[str, Any]) -> IntentModel:
    texts, intents, annotations = annotated(ENTITY_TRAIN)
    return fine_tune(texts, intents, validate({**tiny_settings, "epochs": 60}), annotations=annotations)


def spans(found: List[List[Dict[str, Any]]]) -> List[set]:
    return [{(e["start"], e["end"], e["entity"], e.get("role")) for e in message} for message in found]


@pytest.mark.training
def test_the_entity_head_finds_known_values_in_new_sentences(trained: IntentModel) -> None:
    texts, intents, annotations = annotated(ENTITY_HELD_OUT)
    predictions = trained.predict(texts)
    found, gold = spans(predictions.entities), spans(annotations)
    right = sum(len(a & b) for a, b in zip(found, gold))
    assert 2 * right / (sum(map(len, found)) + sum(map(len, gold))) >= 0.8  # span F1 of a tiny random BERT
    assert [trained.labels[row.argmax()] for row in predictions.confidences] == intents
    assert trained.entity_types == [CITY, DEPARTURE, EntityType("city", role="destination"), TIME]


@pytest.mark.training
@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_saved_models_find_the_same_entities(trained: IntentModel, backend: str, tmp_path: Path) -> None:
    texts = annotated(ENTITY_HELD_OUT)[0] + ["", "x" * 500]
    trained.save(tmp_path)
    loaded = IntentModel.load(tmp_path, torch.device("cpu"), backend)
    assert spans(loaded.predict(texts).entities) == spans(trained.predict(texts).entities)
    assert loaded.whole_words and trained.whole_words  # no annotation of ENTITY_TRAIN cuts a word
    if trained.tag_transitions is None:
        assert loaded.tag_transitions is None and trained.summary["tag_transition_weight"] == 0
    else:
        np.testing.assert_array_equal(loaded.tag_transitions, trained.tag_transitions)


@pytest.mark.training
@pytest.mark.parametrize("backend", ["onnx", "torch"])
def test_a_message_the_vocabulary_cannot_read_gets_no_intent_and_no_entities(trained: IntentModel, backend: str, tmp_path: Path) -> None:
    trained.save(tmp_path)
    loaded = IntentModel.load(tmp_path, torch.device("cpu"), backend)
    readable = annotated(ENTITY_HELD_OUT)[0][0]
    predictions = loaded.predict(["🙂🙂", "xyz", readable + "🙂"])  # the test vocabulary has no emoji or Latin letters
    assert not predictions.confidences[:2].any() and predictions.entities[:2] == [[], []]
    assert predictions.confidences[2].max() > 0.5 and predictions.entities[2]


@pytest.mark.training
def test_no_entity_is_cut_where_a_long_message_is(trained: IntentModel) -> None:
    text = "帮我定个" + "六点半叫我起床" * 10
    read_up_to = trained.settings.max_length - 2  # characters, one token each, besides [CLS] and [SEP]
    assert text[read_up_to - 2 : read_up_to + 1] == "六点半"  # the window ends inside a time
    cut, whole = trained.predict([text, text[:read_up_to]]).entities  # the same tokens read, then nothing more
    # The text cut short keeps every entity but one at the cut (here 六点, part of 六点半).
    assert cut == [entity for entity in whole if entity["end"] < read_up_to] and cut
    assert all(entity["value"] == "六点半" for entity in cut)


@pytest.mark.training
def test_training_warns_about_each_annotation_it_cannot_use(tiny_settings: Dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    texts, intents, annotations = annotated(ENTITY_TRAIN)
    annotations[0] = annotations[0] + [{"start": 0, "end": 99, "value": "?", "entity": "city"}]
    with caplog.at_level(logging.WARNING, logger="bert_intent"):
        fine_tune(texts, intents, validate({**tiny_settings, "epochs": 1}), annotations=annotations)
    assert any(texts[0] in record.message and "outside the text" in record.message for record in caplog.records)


@pytest.mark.training
def test_entity_recognition_false_learns_intents_only(tiny_settings: Dict[str, Any]) -> None:
    texts, intents, annotations = annotated(ENTITY_TRAIN)
    model = fine_tune(texts, intents, validate({**tiny_settings, "epochs": 1, "entity_recognition": False}), annotations=annotations)
    assert model.entity_types == [] and model.predict(texts[:2]).entities == [[], []]


def test_entities_only_without_annotations_is_a_clear_error(tiny_settings: Dict[str, Any]) -> None:
    texts, intents, _ = annotated(ENTITY_TRAIN)
    with pytest.raises(BertIntentError, match="annotates none"):
        fine_tune(texts, intents, validate({**tiny_settings, "intent_classification": False}))


@pytest.mark.training
def test_a_single_intent_with_entities_trains_the_entity_head(tiny_settings: Dict[str, Any]) -> None:
    texts, _, annotations = annotated({"weather": ENTITY_TRAIN["weather"]})
    model = fine_tune(texts, ["weather"] * len(texts), validate({**tiny_settings, "epochs": 30}), annotations=annotations)
    predictions = model.predict(["[成都]明天冷吗".replace("[", "").replace("]", "")])
    np.testing.assert_array_equal(predictions.confidences, [[1.0]])
    assert [e["value"] for e in predictions.entities[0]] == ["成都"]


@pytest.mark.training
def test_continuing_with_changed_entity_types_names_them(trained: IntentModel, tiny_settings: Dict[str, Any]) -> None:
    texts, intents, annotations = annotated(ENTITY_TRAIN)
    renamed = [[{**a, "entity": "hour"} if a["entity"] == "time" else a for a in message] for message in annotations]
    with pytest.raises(BertIntentError, match=r"entity types changed \(added: hour; removed: time\)"):
        fine_tune(texts, intents, validate(tiny_settings), start_from=trained, annotations=renamed)


@pytest.mark.training
def test_the_parts_skip_and_count_entity_types_the_model_does_not_know(trained: IntentModel) -> None:
    texts, _, annotations = annotated(ENTITY_HELD_OUT)
    unknown = [message + [{"start": 0, "end": 1, "value": texts[row][0], "entity": "weather"}] if row % 2 == 0 else message
               for row, message in enumerate(annotations)]
    with_unknown = parts.evaluate_entities(trained, texts, unknown)
    assert with_unknown == {**parts.evaluate_entities(trained, texts, annotations), "skipped_entities": (len(texts) + 1) // 2}
    # The entities found (decoded with the transitions training chose) beside the heads' most probable tags.
    assert with_unknown["decoded_entity_f1"] >= 0.8 and with_unknown["tag_transition_weight"] in entities.TRANSITION_WEIGHTS
