"""Confidences a fallback threshold can rely on: calibration fitted on held-out messages, the
recommended threshold, expected calibration error, and generated gibberish to check them against.

The network scores each intent k of a message x as `log p_k(x) + log f_k(x)`: the closed-set
probability times the familiarity, the share of the message's token n-grams seen in intent k's
training examples (see `network.py`). The calibration turns each score s into a confidence,
`sigmoid(slope * log_odds(s) + offset)` with `log_odds(s) = s - log(1 - exp(s))`, a forecast of how
likely that intent is right (log-odds, unlike the log score, still tell 0.99 from 0.9999). It is monotone, so
the ranking is the scores' ranking; confidences are forecasts made one intent at a time, so they need
not sum to 1 (a message unlike every intent gets a low confidence for all of them).
"""

import random
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Sequence

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit

# Used without a validation set (fewer than training.MIN_VALIDATION_EXAMPLES held out): the median of
# the calibrations fitted on the held-out messages of benchmarks/confidence.py's CAIS draws (proxy).
DEFAULT_SLOPE, DEFAULT_OFFSET = 1.4, 2.8
# The recommended threshold without a validation set: the same fits' mean, rounded.
DEFAULT_THRESHOLD = 0.55
# Scores are log-probabilities; their probability is kept below 1 so that the log-odds stay finite.
MAX_PROBABILITY = 1 - 1e-6
# Weight of the defaults in a fit, in held-out examples: it keeps a fit on a validation set where
# every message is right (no errors to calibrate against) from running away.
_PRIOR_EXAMPLES = 10.0
RELIABILITY_BINS = 10


@dataclass(frozen=True)
class Calibration:
    """`confidence = sigmoid(slope * log_odds(score) + offset)`; `threshold`: the recommended
    FallbackClassifier threshold; `fitted_on`: how many held-out messages chose them (0: the defaults)."""

    slope: float = DEFAULT_SLOPE
    offset: float = DEFAULT_OFFSET
    threshold: float = DEFAULT_THRESHOLD
    fitted_on: int = 0

    def confidences(self, scores: np.ndarray) -> np.ndarray:
        return expit(self.slope * log_odds(scores) + self.offset)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "Calibration":
        return cls(**values)


def log_odds(scores: np.ndarray) -> np.ndarray:
    """log(q / (1 - q)) of log-probabilities log(q) (what `IntentNetwork` computes in torch)."""
    scores = np.minimum(np.asarray(scores, dtype=np.float64), np.log(MAX_PROBABILITY))
    return scores - np.log(1 - np.exp(scores))


def fit(scores: np.ndarray, correct: Sequence[bool], keep: float) -> Calibration:
    """Fit the calibration on held-out messages ((messages, intents) scores, and whether each one's
    top intent is right): the slope and offset under which the top confidence has the least log loss
    as a forecast of being right (the defaults weigh as `_PRIOR_EXAMPLES` messages), and the threshold
    the top confidence of a share `keep` of the messages reaches."""
    top = log_odds(np.asarray(scores, dtype=np.float64).max(axis=1))
    sign = np.where(np.asarray(correct, dtype=bool), 1.0, -1.0)
    prior = np.array([DEFAULT_SLOPE, DEFAULT_OFFSET])

    def loss(parameters: np.ndarray) -> float:
        log_loss = -np.sum(log_expit(sign * (parameters[0] * top + parameters[1])))
        return float(log_loss + _PRIOR_EXAMPLES * np.sum((parameters - prior) ** 2) / 2)

    slope, offset = minimize(loss, prior, method="L-BFGS-B", bounds=[(1e-3, None), (None, None)]).x
    top_confidences = Calibration(float(slope), float(offset)).confidences(scores).max(axis=1)
    threshold = float(np.quantile(top_confidences, 1 - keep, method="lower"))
    return Calibration(float(slope), float(offset), threshold, len(scores))


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = RELIABILITY_BINS) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by their share of messages."""
    confidences = np.asarray(confidences, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    bin_ids = np.minimum((confidences * bins).astype(int), bins - 1)
    error = 0.0
    for bin_id in np.unique(bin_ids):
        members = bin_ids == bin_id
        error += members.mean() * abs(correct[members].mean() - confidences[members].mean())
    return float(error)


def gibberish(count: int, seed: int) -> List[str]:
    """Messages no bot is taught, like `厙z潾娨x軠xw?`: random CJK ideographs mixed with ASCII
    letters, digits and punctuation, 3 to 14 characters long."""
    generator = random.Random(seed)
    ascii_characters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789?!.,#@%&*"
    return [
        "".join(
            chr(generator.randint(0x4E00, 0x9FFF)) if generator.random() < 0.6 else generator.choice(ascii_characters)
            for _ in range(generator.randint(3, 14))
        )
        for _ in range(count)
    ]
