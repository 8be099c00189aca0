"""The epoch kept: the last one, unless the held-out examples clearly prefer the best (no network)."""

import numpy as np

from bert_intent import epoch_choice


def log_probs(predicted: np.ndarray, classes: int = 4) -> np.ndarray:
    logits = np.zeros((len(predicted), classes))
    logits[np.arange(len(predicted)), predicted] = 5.0
    return logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)


def scorer(targets: np.ndarray, right: np.ndarray) -> epoch_choice.RowScore:
    """An epoch right on the rows where `right` holds, one intent off elsewhere."""
    return epoch_choice.epoch_scorer(targets, log_probs(np.where(right, targets, (targets + 1) % 4)), None, None)


def test_a_lead_of_one_example_in_twelve_is_noise_and_a_lead_on_many_is_not() -> None:
    targets = np.arange(12) % 4
    last = scorer(targets, np.arange(12) >= 4)  # right on 8 of 12
    one_ahead = scorer(targets, np.arange(12) >= 3)  # right on 9 of 12: the 8 and one more
    assert not epoch_choice.clearly_better(one_ahead, last, 12, seed=0)
    many = np.arange(300) % 4
    assert epoch_choice.clearly_better(scorer(many, np.arange(300) >= 50), scorer(many, np.arange(300) >= 80), 300, seed=0)


def test_an_epoch_behind_or_level_is_never_clearly_better() -> None:
    targets = np.arange(40) % 4
    level = scorer(targets, np.arange(40) % 2 == 0)
    assert not epoch_choice.clearly_better(level, level, 40, seed=0)
    assert not epoch_choice.clearly_better(scorer(targets, np.arange(40) < 10), level, 40, seed=0)


def test_entities_count_beside_the_intents() -> None:
    # Tags: 0 outside, 1 begins an entity; one entity per message. Intents equal in both epochs.
    targets = np.arange(60) % 4
    tag_ids = np.tile([0, 1, 0], (60, 1))
    found, missed = np.tile([0, 1, 0], (60, 1)), np.zeros((60, 3), dtype=int)
    intents = log_probs(targets)
    best = epoch_choice.epoch_scorer(targets, intents, tag_ids, found)
    last = epoch_choice.epoch_scorer(targets, intents, tag_ids, np.where(np.arange(60)[:, None] < 30, found, missed))
    assert best(np.arange(60)) == 1.0 and last(np.arange(60)) < 1.0
    assert epoch_choice.clearly_better(best, last, 60, seed=0)
    entities_only = epoch_choice.epoch_scorer(targets, None, tag_ids, found)
    assert entities_only(np.arange(60)) == 1.0


def test_the_selection_score_is_the_mean_of_what_is_learned() -> None:
    assert epoch_choice.selection_score(0.5, None) == 0.5
    assert epoch_choice.selection_score(None, 0.25) == 0.25
    assert epoch_choice.selection_score(0.5, 0.25) == 0.375
