"""Cross-fitted held-out outputs: each example's from the epoch the other half chose (no network)."""

import numpy as np

from bert_intent import cross_fit


def one_hot_log_probs(predicted: list, classes: int = 3, sureness: float = 5.0) -> np.ndarray:
    logits = np.zeros((len(predicted), classes))
    logits[np.arange(len(predicted)), predicted] = sureness
    return logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)


def test_halves_alternate_within_each_intent_and_differ_by_at_most_one_row() -> None:
    targets = np.array([0, 0, 1, 1, 1, 2, 0])
    first = cross_fit.halves(targets)
    assert abs(int(first.sum()) - int((~first).sum())) <= 1
    for target in (0, 1):
        assert first[targets == target].any() and (~first[targets == target]).any()


def test_each_half_gets_the_epoch_the_other_half_chose() -> None:
    targets = np.array([0, 1, 2, 0])  # halves: rows 0 and 1 / rows 3 and 2 (alternately, intent by intent)
    first = cross_fit.halves(targets)
    right_on_first = np.where(first, targets, (targets + 1) % 3)  # an epoch right only on the first half
    right_on_second = np.where(first, (targets + 1) % 3, targets)
    by_epoch = [one_hot_log_probs(right_on_first), one_hot_log_probs(right_on_second)]
    honest = cross_fit.cross_fitted(by_epoch, targets)
    # The first half chose epoch 0 (right on it), so the second half's rows come from epoch 0, and so on.
    np.testing.assert_array_equal(honest[first], by_epoch[1][first])
    np.testing.assert_array_equal(honest[~first], by_epoch[0][~first])
    assert cross_fit.best_epoch(by_epoch, targets, np.flatnonzero(first)) == 0


def test_a_tie_goes_to_the_surer_epoch_and_too_little_gives_nothing() -> None:
    targets = np.array([0, 1])
    unsure, sure = one_hot_log_probs([0, 1], sureness=1.0), one_hot_log_probs([0, 1], sureness=5.0)
    assert cross_fit.best_epoch([unsure, sure], targets, np.arange(2)) == 1
    assert cross_fit.cross_fitted([sure], np.array([0])) is None
    assert cross_fit.cross_fitted([], targets) is None
