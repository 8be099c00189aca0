"""The encoder head's held-out outputs as if its epoch had been chosen without them.

The held-out examples choose the epoch the encoder keeps (its best held-out macro-F1), and then the
heads' weights. Fitted on that epoch's outputs, the weights would see the encoder at its luckiest on
the very examples that chose it: on a dozen held-out messages the best of 50 epochs is right far more
often than the same encoder on new messages (docs/held-out-decisions.md). Cross-fitting removes that:
the held-out examples are split in two halves (alternately within each intent), an epoch is chosen on
each half by the same rule (on the intents), and each example gets the outputs of the epoch the other
half chose. (The calibration, which maps the served network's scores, is fitted on the served epoch's
outputs.)
"""

from typing import Optional, Sequence

import numpy as np

from bert_intent.reports import scores
from bert_intent.trainer import improves


def halves(targets: np.ndarray) -> np.ndarray:
    """Which rows form the first half: each intent's rows alternately, continuing from one intent to the
    next, so the halves differ by at most one row and share every intent with two rows or more."""
    first = np.zeros(len(targets), dtype=bool)
    rows_by_intent = [np.flatnonzero(targets == target) for target in np.unique(targets)]
    for position, row in enumerate(np.concatenate(rows_by_intent) if rows_by_intent else []):
        first[row] = position % 2 == 0
    return first


def best_epoch(log_probs_by_epoch: Sequence[np.ndarray], targets: np.ndarray, rows: np.ndarray) -> int:
    """The index of the epoch whose outputs do best on `rows`: the highest intent macro-F1, a tie going
    to a clearly lower mean log loss (`trainer.improves`, the rule that chose the epoch kept; that one
    also averages in the entity F1 when entities are learned, and weighs its loss by class)."""
    best, chosen = None, 0
    for epoch, log_probs in enumerate(log_probs_by_epoch):
        macro_f1 = scores(targets[rows], log_probs[rows].argmax(axis=-1))["macro_f1"]
        log_loss = float(-log_probs[rows, targets[rows]].mean())
        if improves(macro_f1, log_loss, best):
            best, chosen = (macro_f1, log_loss), epoch
    return chosen


def cross_fitted(log_probs_by_epoch: Sequence[np.ndarray], targets: np.ndarray) -> Optional[np.ndarray]:
    """Each held-out row's log-probabilities from the epoch chosen on the other half (`log_probs_by_epoch`:
    one (rows, intents) array per epoch, rows in the order of `targets`); None without two rows or epochs."""
    if len(targets) < 2 or not len(log_probs_by_epoch):
        return None
    first = halves(targets)
    chosen_by_second = log_probs_by_epoch[best_epoch(log_probs_by_epoch, targets, np.flatnonzero(~first))]
    chosen_by_first = log_probs_by_epoch[best_epoch(log_probs_by_epoch, targets, np.flatnonzero(first))]
    return np.where(first[:, None], chosen_by_second, chosen_by_first)
