"""Confidences a fallback threshold can rely on, fitted on each bot's held-out messages.

Each intent k of a message x gets an open-set score from three parts the network computes:

    s_k(x) = log p_k(x) + a * log f_k(x) + b * (cos_max(x) - 1) + c * (cos_k(x) - cos_max(x))

- p_k: the closed-set probability, both heads combined (`combination.py`);
- f_k: the familiarity, the share of the message's token n-grams seen in intent k's training examples
  (lexical: gibberish, emoji and other languages share few);
- cos_k: the cosine of the fine-tuned encoder's representation of the message with intent k's
  centroid, cos_max the largest of them. How near the message is to any intent (b, the same for every
  intent) moves only "none of them" (semantic: other topics in familiar words lie away from every
  intent's examples); which centroid is nearest (c) also reorders the intents. The encoder head already
  ranks the intents by the same representation, with a weight of its own (`combination.py`), so c
  starts small and counts only as far as the held-out messages show that the centroids rank better.

The confidences are a softmax over the intents' scores and a "none of them" logit,
`softmax(slope * s_1, ..., slope * s_K, offset)` without its last entry: each intent's probability,
the rest meaning "none of them". They sum to at most 1, keep the scores' order, and an ambiguous
message (two intents with equal scores) gets at most half for either.

Fitted per bot, with the constants only as priors (`fit`): a, b, c, slope and offset together are those
under which the held-out messages' confidences forecast their intents best (least log loss), with
generated gibberish as "none of them"; the recommended threshold keeps a share of the held-out
messages, raised (within limits) until, with 90 % confidence, it catches 99 % of new gibberish.
"""

import random
from dataclasses import asdict, dataclass, replace
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from scipy import stats
from torch.nn import functional

from bert_intent.combination import minimise

# Priors of the fit (and its values when nothing is held out). An offset of -3 leaves "none of them" 5 %
# beside a message that fits one intent perfectly; 0.5 halves the probability an unfamiliar message keeps.
# The centroids' ranking starts at a tenth of the weight of the nearness to any of them: a second
# reading of the encoder's representation, which the encoder head's weight already counts.
DEFAULT_FAMILIARITY_WEIGHT, DEFAULT_SIMILARITY_WEIGHT, DEFAULT_RANKING_WEIGHT = 1.0, 1.0, 0.1
DEFAULT_SLOPE, DEFAULT_OFFSET = 1.0, -3.0
DEFAULT_THRESHOLD = 0.5
# Standard deviation of the priors on the log-weights and the log-slope: wide enough that a dozen
# held-out messages move them.
_PRIOR_SCALE = 1.0
# The offset's prior is wider: the held-out log loss is nearly flat in it (only the few doubtful messages
# and the gibberish set it), so a prior as narrow as the others' kept it at -3 whatever the bot, and a
# sure message's confidence near 0.95 even where the held-out messages were right far more often.
_OFFSET_PRIOR_SCALE = 10.0
# Generated gibberish weighs this share of the held-out messages in the fit: enough to anchor "none of
# them" far below real messages without tilting their calibration (0.3 and 1 tilted it on CAIS).
_GIBBERISH_SHARE = 0.1
# ... and at least as much as ten messages (a prior, tried at this one value): with nine held out, a tenth
# of them gave gibberish less say than one message, and the threshold, which so few messages cannot
# raise, caught 57 to 95 % of it on CAIS at 10 per intent (docs/held-out-decisions.md, session 49).
_LEAST_GIBBERISH_WEIGHT = 10.0
# The recommended threshold is raised until it catches this share of new gibberish with `_ASSURANCE`
# confidence, giving up at most another `_RAISE_AT_MOST` of the held-out messages. (A threshold at the
# checks' 99 % quantile caught 99 % of new gibberish on average, so less than that on about half the bots.)
GIBBERISH_CAUGHT = 0.99
_ASSURANCE = 0.9
_RAISE_AT_MOST = 0.05
_LARGEST_LOG = 6.0  # the weights and the slope stay within a factor e^6 of 1
_LEAST_FAMILIARITY = 1e-4  # log(0) would be -inf
RELIABILITY_BINS = 10


@dataclass(frozen=True)
class Calibration:
    """The open-set score's weights (`familiarity_weight` a, `similarity_weight` b, `ranking_weight`
    c), the confidences' `slope` and `offset`, the recommended FallbackClassifier `threshold`, and how
    many held-out messages chose them (`fitted_on`, 0: the priors)."""

    familiarity_weight: float = DEFAULT_FAMILIARITY_WEIGHT
    similarity_weight: float = DEFAULT_SIMILARITY_WEIGHT
    ranking_weight: float = DEFAULT_RANKING_WEIGHT
    slope: float = DEFAULT_SLOPE
    offset: float = DEFAULT_OFFSET
    threshold: float = DEFAULT_THRESHOLD
    fitted_on: int = 0

    def parameters(self) -> torch.Tensor:
        """What the network applies: [familiarity_weight, similarity_weight, ranking_weight, slope, offset]."""
        return torch.tensor([self.familiarity_weight, self.similarity_weight, self.ranking_weight, self.slope, self.offset])

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "Calibration":
        return cls(**values)


@dataclass
class ScoreParts:
    """Per message and intent (messages x intents): closed-set log-probabilities, familiarity, cosine."""

    closed: np.ndarray
    familiarity: np.ndarray
    similarity: np.ndarray

    def tensors(self) -> List[torch.Tensor]:
        return [torch.as_tensor(part, dtype=torch.float64) for part in (self.closed, self.familiarity, self.similarity)]


def open_scores(
    closed: torch.Tensor, familiarity: torch.Tensor, similarity: torch.Tensor, parameters: torch.Tensor
) -> torch.Tensor:
    """The open-set scores s_k (see the module docstring); `parameters` as `Calibration.parameters`."""
    log_familiarity = torch.log(familiarity.clamp(min=_LEAST_FAMILIARITY))
    nearest = similarity.max(dim=-1, keepdim=True).values
    return closed + parameters[0] * log_familiarity + parameters[1] * (nearest - 1) + parameters[2] * (similarity - nearest)


def confidences(scores: torch.Tensor, parameters: torch.Tensor) -> torch.Tensor:
    """Each intent's probability beside "none of them": softmax(slope * scores, offset) without "none"."""
    none = (scores[..., :1] * 0 + parameters[4]).to(scores.dtype)
    return functional.softmax(torch.cat([parameters[3] * scores, none], dim=-1), dim=-1)[..., :-1]


def fit(parts: ScoreParts, intent_ids: np.ndarray, gibberish_parts: ScoreParts, keep: float) -> Calibration:
    """The calibration of held-out messages (their score parts and true intents) beside generated
    gibberish, the priors without held-out messages. All five parameters together have the least log
    loss of the held-out messages as their intents and of the gibberish as "none of them" (weighing
    `_GIBBERISH_SHARE` of the messages, at least `_LEAST_GIBBERISH_WEIGHT` messages), under the priors.
    The threshold keeps a share `keep` of the held-out messages, raised until it catches
    `GIBBERISH_CAUGHT` of the gibberish as long as it keeps `keep - _RAISE_AT_MOST` of them
    (`recommended_threshold`)."""
    if len(intent_ids) == 0:
        return Calibration()
    targets = torch.as_tensor(intent_ids, dtype=torch.long)
    gibberish_weight = max(_GIBBERISH_SHARE * len(intent_ids), _LEAST_GIBBERISH_WEIGHT) / max(1, len(gibberish_parts.closed))
    prior = Calibration()
    # Optimised: the logarithms of the three weights and of the slope, and the offset.
    start = torch.tensor(
        [*np.log([prior.familiarity_weight, prior.similarity_weight, prior.ranking_weight, prior.slope]), prior.offset],
        dtype=torch.float64,
    )

    prior_scales = torch.tensor([_PRIOR_SCALE] * 4 + [_OFFSET_PRIOR_SCALE], dtype=torch.float64)
    held_out_tensors, gibberish_tensors = parts.tensors(), gibberish_parts.tensors()

    def loss(values: torch.Tensor) -> torch.Tensor:
        parameters = torch.cat([values[:4].clamp(-_LARGEST_LOG, _LARGEST_LOG).exp(), values[4:]])
        held_out = confidences(open_scores(*held_out_tensors, parameters), parameters)
        log_loss = -torch.log(held_out.gather(1, targets[:, None]).clamp(min=1e-12)).sum()
        if len(gibberish_parts.closed):
            none = 1 - confidences(open_scores(*gibberish_tensors, parameters), parameters).sum(dim=-1)
            log_loss = log_loss - gibberish_weight * torch.log(none.clamp(min=1e-12)).sum()
        return log_loss + ((values - start) / prior_scales).square().sum() / 2

    values = minimise(loss, start)
    familiarity_weight, similarity_weight, ranking_weight, slope = values[:4].clamp(-_LARGEST_LOG, _LARGEST_LOG).exp().tolist()
    fitted = Calibration(familiarity_weight, similarity_weight, ranking_weight, slope, float(values[4]), fitted_on=len(intent_ids))
    gibberish_top = apply(fitted, gibberish_parts).max(axis=1, initial=0.0)
    return replace(fitted, threshold=recommended_threshold(apply(fitted, parts).max(axis=1), gibberish_top, keep))


def recommended_threshold(held_out_top: np.ndarray, gibberish_top: np.ndarray, keep: float) -> float:
    """The threshold that keeps a share `keep` of the held-out messages (by their top confidences),
    raised until it catches `GIBBERISH_CAUGHT` of new gibberish with `_ASSURANCE` confidence
    (`catches_gibberish`, from the top confidences of generated gibberish) as long as it keeps
    `keep - _RAISE_AT_MOST` of the held-out messages."""
    threshold = float(np.quantile(held_out_top, 1 - keep, method="lower"))
    if len(gibberish_top):
        highest = float(np.quantile(held_out_top, 1 - max(keep - _RAISE_AT_MOST, 0.0), method="lower"))
        threshold = max(threshold, min(catches_gibberish(gibberish_top), highest))
    return threshold


def catches_gibberish(gibberish_top: np.ndarray) -> float:
    """The lowest threshold that catches `GIBBERISH_CAUGHT` of new gibberish with `_ASSURANCE`
    confidence, judged by the top confidences of n generated ones (a distribution-free tolerance
    bound): the share of new gibberish below the j-th lowest of them is Beta(j, n + 1 - j)-distributed,
    so the threshold is the lowest check whose share is at least `GIBBERISH_CAUGHT` with that
    confidence (the 995th of 1000), or just above the highest where n is too small for any (n < 230)."""
    ordered = np.sort(np.asarray(gibberish_top, dtype=np.float64))
    ranks = np.arange(1, len(ordered) + 1)
    assured = stats.beta.ppf(1 - _ASSURANCE, ranks, len(ordered) + 1 - ranks) >= GIBBERISH_CAUGHT
    return float(ordered[np.argmax(assured)]) if assured.any() else float(np.nextafter(ordered[-1], np.inf))


def apply(calibration: Calibration, parts: ScoreParts) -> np.ndarray:
    """The confidences (messages x intents) of messages with these score parts."""
    parameters = calibration.parameters().double()
    with torch.no_grad():
        return confidences(open_scores(*parts.tensors(), parameters), parameters).numpy()


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = RELIABILITY_BINS, weights: Optional[Sequence[float]] = None
) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by their share of messages
    (each message counting its `weights` entry, 1 without; messages of weight 0 do not count)."""
    confidences = np.asarray(confidences, dtype=np.float64)
    correct = np.asarray(correct, dtype=np.float64)
    weights = np.ones_like(confidences) if weights is None else np.asarray(weights, dtype=np.float64)
    bin_ids = np.minimum((confidences * bins).astype(int), bins - 1)
    error = 0.0
    for bin_id in np.unique(bin_ids[weights > 0]):
        members = (bin_ids == bin_id) & (weights > 0)
        share = weights[members].sum() / weights.sum()
        error += share * abs(np.average(correct[members], weights=weights[members]) - np.average(confidences[members], weights=weights[members]))
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
