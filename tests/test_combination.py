"""The heads' weights: fitted on held-out rows, following whichever head is right (no network)."""

import numpy as np
import pytest
import torch

from bert_intent import combination
from bert_intent.combination import Combination


def head(truth: np.ndarray, right: float, sureness: float, seed: int) -> np.ndarray:
    """Log-probabilities of a head that puts `sureness` logits on the true class a share `right` of the
    time (on a random other class otherwise)."""
    generator = np.random.default_rng(seed)
    logits = generator.normal(0, 1, (len(truth), 5))
    chosen = np.where(generator.random(len(truth)) < right, truth, (truth + generator.integers(1, 5, len(truth))) % 5)
    logits[np.arange(len(truth)), chosen] += sureness
    return logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)


@pytest.mark.parametrize("encoder_right, ngrams_right", [(0.95, 0.3), (0.3, 0.95), (0.9, 0.9)])
def test_the_combination_is_at_least_as_good_as_the_better_head(encoder_right: float, ngrams_right: float) -> None:
    truth = np.random.default_rng(0).integers(0, 5, 600)
    encoder, ngrams = head(truth, encoder_right, 12, seed=1), head(truth, ngrams_right, 3, seed=2)
    fitted = combination.fit(encoder[:300], ngrams[:300], truth[:300], combination.INTENT_PRIORS)
    combined = combination.combine(torch.from_numpy(encoder[300:]), torch.from_numpy(ngrams[300:]), fitted.weights()).numpy()
    best_alone = max(combination.accuracy(encoder[300:], truth[300:]), combination.accuracy(ngrams[300:], truth[300:]))
    assert combination.accuracy(combined, truth[300:]) >= best_alone - 0.01
    assert fitted.fitted_on == 300


def test_a_strong_encoder_overrides_the_prior() -> None:
    truth = np.random.default_rng(3).integers(0, 5, 100)
    fitted = combination.fit(head(truth, 0.98, 6, seed=4), head(truth, 0.2, 3, seed=5), truth, (combination.INTENT_PRIOR,))
    assert fitted.encoder > 5 * combination.INTENT_PRIOR.encoder and fitted.ngrams < combination.INTENT_PRIOR.ngrams


def test_without_rows_the_prior_is_kept_and_a_few_rows_stay_near_it() -> None:
    empty = np.zeros((0, 5))
    assert combination.fit(empty, empty, np.zeros(0, dtype=int), combination.INTENT_PRIORS) == combination.INTENT_PRIOR
    truth = np.array([0, 1])
    few = combination.fit(head(truth, 1.0, 3, 6), head(truth, 1.0, 3, 7), truth, (combination.INTENT_PRIOR,))
    assert 0.01 < few.encoder < 1.0 and 0.1 < few.ngrams < 10


def test_the_prior_is_the_one_the_held_out_rows_favour() -> None:
    """An encoder right and sure on every held-out row leaves its weight free above a point: the prior
    decides, and the one chosen has the encoder as trained. Where its sure errors show, the stand-in's
    prior (a tenth) is kept."""
    truth = np.random.default_rng(8).integers(0, 5, 12)
    sure_and_right = combination.fit(head(truth, 1.0, 12, 9), head(truth, 0.5, 2, 10), truth, combination.INTENT_PRIORS)
    held_back = combination.fit(head(truth, 1.0, 12, 9), head(truth, 0.5, 2, 10), truth, (combination.INTENT_PRIOR,))
    assert sure_and_right.encoder > 2 * held_back.encoder and sure_and_right.encoder > sure_and_right.ngrams
    encoder, ngrams = head(truth, 0.6, 12, 11), head(truth, 0.9, 2, 12)
    assert combination.fit(encoder, ngrams, truth, combination.INTENT_PRIORS) == combination.fit(encoder, ngrams, truth, (combination.INTENT_PRIOR,))


def test_combined_log_probabilities_are_normalised() -> None:
    encoder, ngrams = torch.log_softmax(torch.randn(3, 4), -1), torch.log_softmax(torch.randn(3, 4), -1)
    combined = combination.combine(encoder, ngrams, Combination(0.3, 1.7).weights())
    torch.testing.assert_close(combined.exp().sum(dim=-1), torch.ones(3))


def test_combination_round_trips_through_a_dict() -> None:
    assert Combination.from_dict(Combination(0.2, 1.3, 40).to_dict()) == Combination(0.2, 1.3, 40)
