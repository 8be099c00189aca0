"""Open-set confidences, their fit on held-out messages, expected calibration error and gibberish (no network)."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from bert_intent import confidence
from bert_intent import held_out as held_out_module
from bert_intent.confidence import Calibration, ScoreParts
from bert_intent.held_out import Fitted
from bert_intent.settings import validate


def parts(closed: np.ndarray, familiarity: float = 1.0, similarity: float = 1.0) -> ScoreParts:
    return ScoreParts(closed, np.full_like(closed, familiarity), np.full_like(closed, similarity))


def synthetic(count: int, seed: int) -> tuple:
    """Held-out messages of a 4-intent bot (right 80 % of the time, familiar) and unfamiliar gibberish."""
    generator = np.random.default_rng(seed)
    truth = generator.integers(0, 4, count)
    logits = generator.normal(0, 1, (count, 4))
    right = generator.random(count) < 0.8
    logits[np.arange(count), np.where(right, truth, (truth + 1) % 4)] += 4
    closed = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    familiarity = np.full_like(closed, 0.2)
    familiarity[np.arange(count), truth] = 0.9
    held_out = ScoreParts(closed, familiarity, np.full_like(closed, 0.5))
    gibberish = ScoreParts(np.log(np.full((50, 4), 0.25)), np.full((50, 4), 0.01), np.zeros((50, 4)))
    return held_out, truth, gibberish


def test_the_fit_is_calibrated_keeps_its_share_and_separates_gibberish() -> None:
    held_out, truth, gibberish = synthetic(2000, seed=0)
    fitted = confidence.fit(held_out, truth, gibberish, keep=0.95)
    assert fitted.fitted_on == 2000
    top = confidence.apply(fitted, held_out).max(axis=1)
    correct = confidence.apply(fitted, held_out).argmax(axis=1) == truth
    assert confidence.expected_calibration_error(top, correct) < 0.03
    assert np.mean(top >= fitted.threshold) == pytest.approx(0.95, abs=0.002)
    assert confidence.apply(fitted, gibberish).max(axis=1).max() < fitted.threshold
    assert fitted.familiarity_weight > 0 and fitted.similarity_weight > 0


def test_the_threshold_is_raised_to_catch_gibberish_within_limits() -> None:
    held_out, truth, _ = synthetic(400, seed=2)
    familiar_gibberish = ScoreParts(held_out.closed[:100], held_out.familiarity[:100], held_out.similarity[:100])
    fitted = confidence.fit(held_out, truth, familiar_gibberish, keep=0.95)
    top = confidence.apply(fitted, held_out).max(axis=1)
    assert np.mean(top >= fitted.threshold) == pytest.approx(0.90, abs=0.003)  # raised, but only this far
    unfamiliar = ScoreParts(held_out.closed[:100], held_out.familiarity[:100] / 4, held_out.similarity[:100] - 0.3)
    fitted = confidence.fit(held_out, truth, unfamiliar, keep=0.95)
    assert np.mean(confidence.apply(fitted, unfamiliar).max(axis=1) < fitted.threshold) >= 0.99
    assert np.mean(confidence.apply(fitted, held_out).max(axis=1) >= fitted.threshold) >= 0.90


def test_gibberish_weighs_at_least_ten_messages_beside_a_few_held_out_ones() -> None:
    # Nine held-out messages, right and sure, all as familiar to every intent: only the gibberish can
    # show how far below them an unfamiliar message lies (weighing 0.9 of a message, it left 4 % to it).
    truth = np.arange(9) % 3
    closed = np.log(np.full((9, 3), 0.1))
    closed[np.arange(9), truth] = np.log(0.8)
    held_out = ScoreParts(closed, np.full((9, 3), 0.5), np.full((9, 3), 0.6))
    gibberish = ScoreParts(np.log(np.full((200, 3), 1 / 3)), np.full((200, 3), 0.15), np.full((200, 3), 0.3))
    fitted = confidence.fit(held_out, truth, gibberish, keep=0.95)
    assert confidence.apply(fitted, gibberish).max() < 0.01
    assert confidence.apply(fitted, held_out).max(axis=1).min() > 0.95


def test_the_gibberish_bound_catches_99_percent_of_new_gibberish_at_least_nine_times_in_ten() -> None:
    generator = np.random.default_rng(0)
    checks = generator.random((2000, held_out_module.GIBBERISH_CHECKS))  # top confidences of gibberish, any distribution
    thresholds = np.array([confidence.catches_gibberish(row) for row in checks])
    # Uniform: the threshold is the share caught. The 995th of 1000 is sure 93 % of the time, the 994th 87 %.
    assert np.mean(thresholds >= confidence.GIBBERISH_CAUGHT) == pytest.approx(0.934, abs=0.02)
    assert np.sum(checks[0] >= thresholds[0]) == 6  # the 995th lowest of 1000
    few = generator.random(100)  # too few to be sure of any: above every check
    assert few.max() < confidence.catches_gibberish(few) < few.max() + 1e-9


def test_the_threshold_is_checked_against_gibberish_as_the_served_model_scores_it() -> None:
    held_out, truth, _ = synthetic(400, seed=3)
    calibration = confidence.fit(held_out, truth, parts(np.log(np.full((0, 4), 0.25))), keep=0.95)
    fitted = Fitted(calibration=calibration, intent_ids=truth, confidences=confidence.apply(calibration, held_out))
    settings = validate({"threshold_keeps": 0.95})
    scored = []

    def served(texts: list) -> np.ndarray:  # the served model is surer of gibberish than the held-out fit was
        scored.extend(texts)
        return np.tile([calibration.threshold + 0.02, 0.0, 0.0, 0.0], (len(texts), 1))

    checked, gibberish_confidences = held_out_module.checked_against_served(fitted, served, settings)
    assert scored == held_out_module.gibberish_checks(settings) and len(gibberish_confidences) == len(scored)
    assert calibration.threshold < checked.threshold <= np.quantile(fitted.confidences.max(axis=1), 0.10)
    assert replace(checked, threshold=calibration.threshold) == calibration
    without = Fitted()
    assert held_out_module.checked_against_served(without, served, settings)[0] == without.calibration


def test_without_held_out_messages_the_priors_are_kept() -> None:
    _, _, gibberish = synthetic(10, seed=1)
    assert confidence.fit(parts(np.zeros((0, 4))), np.zeros(0, dtype=int), gibberish, keep=0.95) == Calibration()


def test_a_handful_of_held_out_messages_without_errors_keeps_the_fit_finite() -> None:
    closed = np.log(np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.05, 0.05, 0.9]]))
    fitted = confidence.fit(parts(closed), np.array([0, 1, 2]), parts(np.log(np.full((5, 3), 1 / 3)), 0.01, 0.0), keep=0.95)
    values = list(fitted.to_dict().values())
    assert np.isfinite(values).all() and 0 < fitted.threshold < 1


def test_the_offset_is_served_as_fitted_beyond_the_weights_bounds() -> None:
    # Ten thousand held-out messages, each sure and right: "none of them" should get almost nothing, an
    # offset below -6, the bound that only the weights and the slope have.
    closed = np.log(np.tile([0.999999, 0.000001], (10_000, 1)))
    gibberish = parts(np.log(np.full((50, 2), 0.5)), familiarity=0.0)
    fitted = confidence.fit(parts(closed), np.zeros(10_000, dtype=int), gibberish, keep=0.95)
    assert fitted.offset < -6
    expected = 1 / (1 + np.exp(fitted.offset) + np.exp(fitted.slope * (closed[0, 1] - closed[0, 0])))
    assert confidence.apply(fitted, parts(closed[:1]))[0, 0] == pytest.approx(expected)


def test_confidences_keep_the_order_sum_to_at_most_one_and_split_between_equal_intents() -> None:
    scores = torch.tensor([[-0.1, -3.0, -4.0, -5.0], [-0.05, -0.05, -6.0, -6.0], [-9.0, -9.5, -8.0, -9.0]])
    values = confidence.confidences(scores, Calibration().parameters())
    assert (values.argsort(dim=1) == scores.argsort(dim=1)).all()
    assert (values.sum(dim=1) <= 1).all()
    assert values[1, 0] == pytest.approx(values[1, 1].item()) and values[1].max() < 0.5  # ambiguous: half at most
    assert values[2].max() < Calibration().threshold < values[0].max()  # unfamiliar: "none of them"


def test_nearness_to_any_centroid_moves_none_of_them_and_the_ranking_weight_reorders() -> None:
    closed = torch.log(torch.tensor([[0.6, 0.4]], dtype=torch.float64))
    near, far = torch.tensor([[0.5, 0.9]], dtype=torch.float64), torch.tensor([[0.1, 0.5]], dtype=torch.float64)
    familiar = torch.ones_like(closed)
    without_ranking = Calibration(ranking_weight=1e-6).parameters().double()
    scores = [confidence.open_scores(closed, familiar, similarity, without_ranking) for similarity in (near, far)]
    assert scores[0].argmax() == 0 and (scores[0] - scores[1]).allclose(torch.full((1, 2), 0.4, dtype=torch.float64))
    ranking = Calibration(ranking_weight=2.0).parameters().double()
    assert confidence.open_scores(closed, familiar, near, ranking).argmax() == 1  # the nearer centroid wins


def test_held_out_messages_where_the_centroids_rank_better_earn_their_weight() -> None:
    generator = np.random.default_rng(4)
    truth = generator.integers(0, 4, 300)
    closed = np.log(np.full((300, 4), 0.25))  # the heads cannot tell the intents apart
    similarity = generator.uniform(0.2, 0.5, (300, 4))
    similarity[np.arange(300), truth] += 0.4  # the true intent's centroid is nearest
    held_out = ScoreParts(closed, np.ones_like(closed), similarity)
    gibberish = ScoreParts(np.log(np.full((50, 4), 0.25)), np.full((50, 4), 0.01), np.zeros((50, 4)))
    fitted = confidence.fit(held_out, truth, gibberish, keep=0.95)
    assert fitted.ranking_weight > 10 * confidence.DEFAULT_RANKING_WEIGHT
    assert np.mean(confidence.apply(fitted, held_out).argmax(axis=1) == truth) > 0.95
    unhelpful = ScoreParts(held_out.closed, held_out.familiarity, generator.uniform(0.2, 0.9, (300, 4)))
    assert confidence.fit(unhelpful, truth, gibberish, keep=0.95).ranking_weight < confidence.DEFAULT_RANKING_WEIGHT * 2


def test_expected_calibration_error_of_known_cases() -> None:
    assert confidence.expected_calibration_error([0.8] * 10, [True] * 8 + [False] * 2) == pytest.approx(0.0)
    assert confidence.expected_calibration_error([0.95, 0.95], [False, False]) == pytest.approx(0.95)
    # A message weighing 3 counts as three copies of it.
    weighted = confidence.expected_calibration_error([0.9, 0.6, 0.3], [True, False, True], weights=[3, 1, 2])
    assert weighted == pytest.approx(confidence.expected_calibration_error([0.9] * 3 + [0.6] + [0.3] * 2, [True] * 3 + [False] + [True] * 2))
    assert confidence.expected_calibration_error([0.9, 0.2], [True, True], weights=[1, 0]) == pytest.approx(0.1)


def test_calibration_round_trips_through_a_dict() -> None:
    calibration = Calibration(1.5, 0.7, 0.3, 1.2, -2.5, 0.42, 120)
    assert Calibration.from_dict(calibration.to_dict()) == calibration


def test_gibberish_is_reproducible_and_unlike_language() -> None:
    messages = confidence.gibberish(50, seed=3)
    assert messages == confidence.gibberish(50, seed=3) != confidence.gibberish(50, seed=4)
    assert all(3 <= len(message) <= 14 for message in messages)
