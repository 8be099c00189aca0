"""Multi-intents learned from their parts (`multi_intent.py`): the pure parts here, training with the tiny BERT below."""

import warnings
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

from bert_intent import multi_intent, settings
from bert_intent.multi_intent import Decision, JoinedIntent
from bert_intent.model import IntentModel
from bert_intent.training import fine_tune
from tests.helpers import HELD_OUT, TRAIN, pairs

LABELS = ["alarm", "music", "weather"]


def test_only_two_intents_with_examples_joined_are_learned_from_their_parts() -> None:
    joined, ordinary = multi_intent.joined_intents(
        ["alarm", "weather", "music", "alarm+weather", "weather+alarm", "alarm+news", "alarm+music+weather", "alarm+alarm"],
        "+",
    )
    assert joined == [JoinedIntent("alarm+weather", ("alarm", "weather")), JoinedIntent("weather+alarm", ("weather", "alarm"))]
    assert ordinary == ["alarm+alarm", "alarm+music+weather", "alarm+news"]
    assert multi_intent.joined_intents(["a", "b", "a+b"], "__")[0] == []


def test_a_message_is_split_between_tokens_leaving_three_on_each_side(tiny_bert: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)

    def points(text: str) -> List[int]:
        return multi_intent.split_points(tokenizer(text, return_offsets_mapping=True)["offset_mapping"])

    assert points("放首歌再叫我") == [3]
    assert points("放首歌再叫我起床") == [3, 4, 5]
    assert points("放歌关灯") == []
    long = points("天" * 100)
    assert len(long) == multi_intent.MAX_SPLIT_POINTS and long == sorted(long)


def test_the_part_mask_reads_the_whole_message_then_each_side_of_each_point(tiny_bert: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    # Padded as in a batch, to its longest message (8 characters: 10 tokens).
    encoded = tokenizer(["放首歌再叫我", "放首歌再叫我起床"], return_offsets_mapping=True, return_tensors="np", padding=True)
    attention_mask, offsets = encoded["attention_mask"][0], encoded["offset_mapping"][0]
    mask = multi_intent.part_mask(offsets, attention_mask, [2, 4])
    np.testing.assert_array_equal(mask, [
        [1, 1, 1, 1, 1, 1, 1, 1, 0, 0],  # the whole message: [CLS] 放首歌再叫我 [SEP], then padding
        [1, 1, 1, 0, 0, 0, 0, 0, 0, 0],  # [CLS] 放首
        [1, 1, 1, 1, 1, 0, 0, 0, 0, 0],  # [CLS] 放首歌再
        [0, 0, 0, 1, 1, 1, 1, 1, 0, 0],  # 歌再叫我 [SEP]
        [0, 0, 0, 0, 0, 1, 1, 1, 0, 0],  # 叫我 [SEP]
    ])


def test_the_points_read_again_alone_are_those_whose_parts_make_the_best_pair() -> None:
    joined = [JoinedIntent("alarm+weather", ("alarm", "weather"))]
    # Three points; before each, then after each (columns: alarm, music, weather).
    parts = np.array([[0.3, 0.3, 0.3], [0.9, 0.05, 0.05], [0.5, 0.4, 0.1], [0.3, 0.3, 0.3], [0.05, 0.05, 0.9], [0.1, 0.1, 0.8]])
    assert multi_intent.best_points(parts, [3, 5, 7], joined, LABELS) == [5, 7][: multi_intent.READ_ALONE_POINTS]


def keyword_confidences(texts: List[str]) -> np.ndarray:
    """A stand-in classifier for the pure functions: 0.9 for the intent whose keyword a text has."""
    keywords = {"alarm": "闹钟", "music": "歌", "weather": "天气"}
    rows = [[0.9 if keywords[label] in text else 0.05 for label in LABELS] for text in texts]
    return np.array([np.array(row) / max(1.0, sum(row)) for row in rows])


def test_the_parts_score_the_best_split_in_either_order() -> None:
    joined = [JoinedIntent("alarm+weather", ("alarm", "weather"))]
    texts = ["看看天气再定个闹钟", "放首歌吧放首歌吧", "天气"]
    points = [list(range(2, len(text) - 1)) for text in texts]  # one token per character
    scores, cuts = multi_intent.log_part_scores(keyword_confidences, texts, points, joined, LABELS)
    assert scores[0, 0] == pytest.approx(2 * np.log(0.9 / 1.0), abs=1e-6)
    assert "天气" in texts[0][: cuts[0, 0]] and "闹钟" in texts[0][cuts[0, 0] :]  # where the best pair splits
    assert scores[1, 0] < scores[0, 0]
    assert scores[2, 0] == -np.inf and cuts[2, 0] == -1  # too short to hold two requests


def test_a_message_read_as_two_averages_its_tags_with_its_parts_read_alone() -> None:
    texts = ["放稻香定闹钟", "放稻香"]
    whole = (np.array([[0, 0], [0, 1], [1, 2], [2, 3], [3, 4], [0, 0]]), np.tile([[1.0, 0.0]], (6, 1)), np.zeros(6))
    short = (np.array([[0, 0], [0, 1], [1, 2], [0, 0]]), np.tile([[1.0, 0.0]], (4, 1)), np.zeros(4))
    parts = {"放稻": (np.array([[0, 0], [0, 1], [1, 2], [0, 0]]), np.tile([[0.0, 1.0]], (4, 1)), np.zeros(4))}  # 香定闹钟: unreadable
    cuts = np.array([[2], [-1]])
    averaged = multi_intent.readings_of_two(texts, np.array([0, -1]), cuts, [whole, short], parts)
    np.testing.assert_allclose(averaged[0][1][1:3], 0.5)  # 放 and 稻 averaged with the part before the cut
    np.testing.assert_allclose(averaged[0][1][3:], whole[1][3:])
    assert averaged[1] is short  # read as one request: its own reading


def test_entities_of_two_requests_are_read_where_no_word_is_cut() -> None:
    text = "来首林俊杰的歌，然后十分钟后叫我"  # the intents' best point may fall inside 然后: 然 | 后十分钟后叫我
    read_alone = {text[:9], text[9:], text[:10], text[10:]}
    assert multi_intent.entity_cut(text, 9, read_alone) == 10  # 然后 | 十分钟后叫我, both parts read alone
    assert multi_intent.entity_cut(text, 9, {text[:9], text[9:]}) == 9  # no edge read alone: the intents' point
    assert multi_intent.entity_cut(text, 8, read_alone) == 8  # already between words


def test_shares_sum_to_at_most_one_and_keep_the_single_intents_order() -> None:
    single = np.array([[0.6, 0.2, 0.1], [0.3, 0.3, 0.1]])
    log_joined = np.array([[np.log(0.01)], [-np.inf]])
    confidences = multi_intent.shares(single, log_joined, Decision(alpha=1.0, beta=0.0))
    assert confidences.shape == (2, 4)
    assert np.all(confidences.sum(axis=1) <= 1 + 1e-9)
    assert list(np.argsort(confidences[0, :3])) == list(np.argsort(single[0]))
    np.testing.assert_allclose(confidences[1, :3], single[1])  # no split: the single intents as they were
    assert confidences[1, 3] == 0
    # A message unlike the training data keeps its "none of them", however sure the decision is of two.
    unknown = multi_intent.shares(np.array([[0.04, 0.03, 0.03]]), np.array([[np.log(0.9 * 0.9)]]), Decision(alpha=5.0, beta=3.0))
    assert unknown.sum() == pytest.approx(0.1)


def test_a_joined_intent_is_no_surer_than_its_parts_read_alone() -> None:
    # A pasted Java log on Python 3.8's offline bot: the whole message gives the intents 0.69, none above
    # 0.37, and its best pair's parts read alone 0.6 each, so the decision is sure of two requests.
    single = np.array([[0.37, 0.2, 0.12]])
    log_joined = np.array([[np.log(0.6 * 0.6)]])
    confidences = multi_intent.shares(single, log_joined, Decision(alpha=7.38, beta=3.65))
    assert confidences.argmax() == 3
    assert 0.3 < confidences[0, 3] <= 0.36  # not 0.67: what its parts support
    # Parts the bot knows well leave a clear two-request message as sure as its whole reading.
    clear = multi_intent.shares(np.array([[0.6, 0.37, 0.0]]), np.array([[np.log(0.98 * 0.99)]]), Decision(7.38, 3.65))
    assert clear[0, 3] == pytest.approx(0.97, abs=0.01)


def test_a_pair_far_below_the_whole_reading_is_one_request_without_overflow_warnings() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a sharp decision and weak pairs: exp(-logit) would overflow
        confidences = multi_intent.shares(np.array([[0.9, 0.05]]), np.array([[-30.0]]), Decision(alpha=40.0, beta=0.0))
    np.testing.assert_allclose(confidences, [[0.9, 0.05, 0.0]])


def test_the_decision_is_fitted_weighing_joined_messages_as_the_data_does_and_the_priors_stand_without_messages() -> None:
    assert multi_intent.fit(np.zeros((0, 3)), np.zeros((0, 1)), [], 0.5) == Decision()
    generator = np.random.default_rng(0)
    joined_rows = np.arange(80) % 2 == 0
    # Two-intent messages: no single intent stands out, a pair does; single ones: the other way round.
    spread, peaked = (generator.dirichlet(np.ones(3) * concentration, size=80) * 0.9 for concentration in (3, 0.3))
    single = np.where(joined_rows[:, None], spread, peaked)
    log_joined = np.where(joined_rows, np.log(0.7), np.log(0.05))[:, None]
    targets = np.where(joined_rows, 3, single.argmax(axis=1))
    decision = multi_intent.fit(single, log_joined, targets, 0.5)
    assert decision.fitted_on == 80
    predicted = multi_intent.shares(single, log_joined, decision).argmax(axis=1)
    assert np.mean(predicted == targets) > np.mean(multi_intent.shares(single, log_joined, Decision()).argmax(axis=1) == targets) - 0.01
    assert np.mean(predicted[joined_rows] == 3) > 0.9
    # Where the bot's data says two requests at once are rare, the joined intent needs more evidence.
    rare = multi_intent.fit(single, log_joined, targets, 0.02)
    assert multi_intent.shares(single, log_joined, rare)[:, 3].max() < multi_intent.shares(single, log_joined, decision)[:, 3].max()


def test_a_bound_on_beta_keeps_messages_a_single_intent_explains_better_single() -> None:
    # The fit's single messages are all far below their pairs' messages: unbounded, beta settles
    # just below them, and reads as two whatever lies between (natural two-clause requests).
    single = np.tile([[0.9, 0.05, 0.0]], (40, 1))
    joined_rows = np.arange(40) % 2 == 0
    log_joined = np.where(joined_rows, np.log(0.5 * 0.9), np.log(0.9 * 0.9 * 0.01))[:, None]
    targets = np.where(joined_rows, 3, 0)
    between = np.array([[0.9, 0.05, 0.0]]), np.array([[np.log(0.8)]])
    assert multi_intent.shares(*between, multi_intent.fit(single, log_joined, targets, 0.5)).argmax() == 3
    bounded = multi_intent.fit(single, log_joined, targets, 0.5, highest_beta=0.0)
    assert bounded.beta == 0.0 and bounded.alpha > 0
    assert multi_intent.shares(*between, bounded).argmax() == 0


def test_two_intent_messages_are_as_likely_as_the_declared_intents_say() -> None:
    # 4 joined among 16 intents; 12 joined examples among 707.
    assert multi_intent.prior_share(4, 16, 12, 695, balanced=True) == pytest.approx(0.2)
    assert multi_intent.prior_share(4, 16, 12, 695, balanced=False) == pytest.approx(12 / 707)


def test_held_out_pairs_are_put_together_in_either_order() -> None:
    texts, intents = ["放首歌", "来点音乐", "七点叫我", "定个闹钟", "天气"], ["music", "music", "alarm", "alarm", "weather"]
    made = multi_intent.joined_training_messages(texts, intents, [JoinedIntent("music+alarm", ("music", "alarm"))], seed=0)
    assert len(made) == multi_intent.PAIRS_PER_JOINED_INTENT
    assert {intent for _, intent, _, _ in made} == {"music+alarm"}
    assert all(text == f"{texts[before]} {texts[after]}" for text, _, before, after in made)
    starts_with_music = [intents[before] == "music" for _, _, before, _ in made]
    assert any(starts_with_music) and not all(starts_with_music)


def test_a_held_out_pair_scores_where_its_two_messages_meet() -> None:
    # The split search misses where the pairs put together meet (their best pair scores 1e-4, below
    # the single messages' 0.01); read where they meet, they teach the fit to read as two a message
    # its pair explains, and as one a message like the single ones.
    labels, joined = ["music", "alarm"], [JoinedIntent("music+alarm", ("music", "alarm"))]
    held_out = [("放首歌", "music"), ("来点音乐", "music"), ("七点叫我", "alarm"), ("定个闹钟", "alarm")]
    sure, intent_of = {"music": [0.9, 0.05], "alarm": [0.05, 0.9]}, dict(held_out)

    def scores_of(texts: List[str]) -> Tuple[np.ndarray, np.ndarray]:
        # A message of two requests is read whole as its first one, as a classifier of single intents does.
        single = np.array([sure[intent_of[text.split(" ")[0]]] for text in texts])
        return single, np.log([[1e-4 if " " in text else 0.01] for text in texts])

    decision = multi_intent.fit_on_held_out(scores_of, labels, joined, held_out, [], 0.5, seed=0)
    two, one = multi_intent.shares(np.array([[0.9, 0.05]] * 2), np.log([[0.81], [0.01]]), decision)
    # A message like the single ones keeps its confidence (without the pairs' meeting point: 0.43).
    assert two[2] > two[0] and one[0] == pytest.approx(0.9, abs=0.01)


JOINED_TRAIN = {
    "weather+alarm": ["明天会下雨吗，顺便设个七点的闹钟", "定个六点的闹钟，再看看天气"],
    "music+alarm": ["放首歌，然后八点叫我起床"],
}
JOINED_HELD_OUT = {
    "weather+alarm": ["今天天气怎么样，另外帮我设闹钟", "明早六点叫我，还有明天会下雨吗", "后天热不热，顺便定个闹钟"],
    "music+alarm": ["来点音乐，然后七点叫我", "帮我设个闹钟，再放首歌"],
}


@pytest.fixture(scope="module")
def trained(tiny_settings: Dict[str, Any]) -> IntentModel:
    texts, intents = pairs({**TRAIN, **JOINED_TRAIN})
    return fine_tune(texts, intents, settings.validate(tiny_settings))


@pytest.mark.training
def test_joined_intents_are_recognised_from_their_parts_with_few_examples(trained: IntentModel) -> None:
    assert trained.labels == sorted(TRAIN)  # the joined names are not labels of their own
    assert trained.intent_names == sorted(TRAIN) + ["music+alarm", "weather+alarm"]
    assert trained.decision.fitted_on > 0
    texts, intents = pairs(JOINED_HELD_OUT)
    confidences = trained.confidences(texts)
    predicted = [trained.intent_names[index] for index in confidences.argmax(axis=1)]
    assert np.mean([guess == intent for guess, intent in zip(predicted, intents)]) >= 0.6
    single_texts, single_intents = pairs(HELD_OUT)
    single = trained.confidences(single_texts)
    assert np.mean([trained.intent_names[index] == intent for index, intent in zip(single.argmax(axis=1), single_intents)]) >= 0.8
    assert np.all(np.concatenate([confidences, single]).sum(axis=1) <= 1 + 1e-5)


@pytest.mark.training
def test_the_onnx_model_keeps_the_joined_intents(trained: IntentModel, tmp_path: Path) -> None:
    trained.save(tmp_path)
    loaded = IntentModel.load(tmp_path, torch.device("cpu"), "onnx")
    assert (loaded.intent_names, loaded.decision) == (trained.intent_names, trained.decision)
    texts, intents = pairs(JOINED_HELD_OUT)
    # The int8 network reads the single intents as the torch one does; the split points it reads alone
    # may differ where the pooled reading ties them (the tiny BERT's is flat: on an AMD EPYC without
    # AVX-512 the int8 one read 9 and 10 alone where torch read 8 and 10 in 后天热不热，顺便定个闹钟, and
    # missed the pair), so the joined intents are held to the torch model's own bar.
    np.testing.assert_allclose(loaded.single_and_pair_scores(texts)[0], trained.single_and_pair_scores(texts)[0], atol=0.02)
    predicted = [loaded.intent_names[index] for index in loaded.confidences(texts).argmax(axis=1)]
    assert np.mean([guess == intent for guess, intent in zip(predicted, intents)]) >= 0.6


@pytest.mark.training
def test_messages_scored_in_one_batch_score_as_they_do_alone(trained: IntentModel) -> None:
    texts = [text for examples in (*JOINED_HELD_OUT.values(), *HELD_OUT.values()) for text in examples]
    together, pairs_together = trained.single_and_pair_scores(texts)
    alone = [trained.single_and_pair_scores([text]) for text in texts]
    np.testing.assert_allclose(together, np.concatenate([single for single, _ in alone]), atol=1e-5)
    np.testing.assert_allclose(pairs_together, np.concatenate([pair for _, pair in alone]), atol=1e-4)
