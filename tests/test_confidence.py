"""Calibration, recommended threshold, expected calibration error and generated gibberish (no network)."""

import numpy as np
import pytest

from bert_intent import confidence
from bert_intent.confidence import Calibration


def test_fit_recovers_the_calibration_that_generated_the_outcomes() -> None:
    generator = np.random.default_rng(0)
    scores = generator.uniform(-6, 0, size=(4000, 3))
    true = Calibration(slope=2.0, offset=4.0)
    correct = generator.random(4000) < true.confidences(scores).max(axis=1)
    fitted = confidence.fit(scores, correct, keep=0.95)
    assert fitted.slope == pytest.approx(2.0, abs=0.2)
    assert fitted.offset == pytest.approx(4.0, abs=0.4)
    assert fitted.fitted_on == 4000
    top = fitted.confidences(scores).max(axis=1)
    assert np.mean(top >= fitted.threshold) == pytest.approx(0.95, abs=0.002)
    assert confidence.expected_calibration_error(top, correct) < 0.02


def test_a_validation_set_without_errors_keeps_the_fit_finite() -> None:
    scores = np.array([[-0.1, -5.0], [-0.2, -4.0], [-0.05, -6.0]])
    fitted = confidence.fit(scores, [True, True, True], keep=0.95)
    assert np.isfinite([fitted.slope, fitted.offset]).all()
    assert 0 < fitted.threshold < 1


def test_confidences_keep_the_ranking_and_need_not_sum_to_one() -> None:
    scores = np.array([[-0.1, -3.0, -0.2], [-8.0, -9.0, -7.5]])
    confidences = Calibration().confidences(scores)
    assert (confidences.argsort(axis=1) == scores.argsort(axis=1)).all()
    assert confidences[1].max() < Calibration().threshold < confidences[0].max()


def test_log_odds_of_log_probabilities() -> None:
    np.testing.assert_allclose(confidence.log_odds(np.log([0.5, 0.9, 0.01])), [0.0, np.log(9), np.log(1 / 99)], atol=1e-9)
    assert np.isfinite(confidence.log_odds(np.array([0.0, -1e-12]))).all()


def test_expected_calibration_error_of_known_cases() -> None:
    assert confidence.expected_calibration_error([0.8] * 10, [True] * 8 + [False] * 2) == pytest.approx(0.0)
    assert confidence.expected_calibration_error([0.95, 0.95], [False, False]) == pytest.approx(0.95)


def test_calibration_round_trips_through_a_dict() -> None:
    calibration = Calibration(1.5, 2.5, 0.42, 120)
    assert Calibration.from_dict(calibration.to_dict()) == calibration


def test_gibberish_is_reproducible_and_unlike_language() -> None:
    messages = confidence.gibberish(50, seed=3)
    assert messages == confidence.gibberish(50, seed=3) != confidence.gibberish(50, seed=4)
    assert all(3 <= len(message) <= 14 for message in messages)
