"""Which epoch training keeps: the plan's last one, unless the held-out examples clearly prefer another.

The plan (about 500 optimizer steps, the learning rate decaying to zero) ends where fine-tuning is meant
to end. The held-out examples score every epoch, and the best of dozens of scores on a few examples is
mostly luck: at 10 examples per intent the held-out set has one per intent, and the epoch it picks is
often worse on new messages than the last one (docs/held-out-decisions.md, session 44). So the best
epoch is kept only where it beats the last by more than one standard error of the difference, read by
resampling the held-out examples (a paired bootstrap of the score that chose it); otherwise the last
epoch is kept. A large held-out set tells a real lead from luck, a small one rarely can.
"""

from typing import Callable, Optional, Sequence

import numpy as np

from bert_intent import entities
from bert_intent.reports import scores

RESAMPLES = 200

# The score of one epoch on some held-out rows.
RowScore = Callable[[np.ndarray], float]


def selection_score(intent_macro_f1: Optional[float], entity_f1: Optional[float]) -> float:
    """The score that compares epochs: the intents' macro-F1, the entities' span F1, or their mean when
    both are learned."""
    parts = [part for part in (intent_macro_f1, entity_f1) if part is not None]
    return float(np.mean(parts))


def epoch_scorer(
    intent_ids: np.ndarray,
    intent_log_probs: Optional[np.ndarray],
    tag_ids: Optional[Sequence[Sequence[int]]],
    tag_predictions: Optional[Sequence[Sequence[int]]],
) -> RowScore:
    """`selection_score` of one epoch's held-out outputs on any rows (intent log-probabilities, or None
    where intents are not learned; predicted tags, or None without entities)."""

    def score(rows: np.ndarray) -> float:
        macro_f1 = None if intent_log_probs is None else scores(intent_ids[rows], intent_log_probs[rows].argmax(axis=-1))["macro_f1"]
        entity_f1 = None if tag_predictions is None else entities.span_f1([tag_ids[row] for row in rows], [tag_predictions[row] for row in rows])
        return selection_score(macro_f1, entity_f1)

    return score


def clearly_better(best: RowScore, last: RowScore, rows: int, seed: int) -> bool:
    """Whether the best epoch's score on `rows` held-out examples exceeds the last epoch's by more than
    one standard error of the difference (over `RESAMPLES` resamplings of the examples, seeded)."""
    every_row = np.arange(rows)
    lead = best(every_row) - last(every_row)
    if lead <= 0:
        return False
    generator = np.random.default_rng(seed)
    resampled = [generator.integers(0, rows, rows) for _ in range(RESAMPLES)]
    standard_error = float(np.std([best(sample) - last(sample) for sample in resampled]))
    return lead > standard_error
