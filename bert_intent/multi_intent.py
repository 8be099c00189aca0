"""Two intents in one message, learned from the single intents' examples (Rasa's multi-intents).

A bot declares a multi-intent the Rasa way: examples whose intent is two intents' names joined by
`intent_split_symbol` (`book_flight+ask_weather`), listed in the domain. When both parts are intents
with examples of their own, the classifier does not learn the joined name as a label: it reads the
message as two parts. At each point between two tokens the text before and the text after are
classified alone, and the joined intent (A, B) scores

    m_AB(x) = exp(beta) * (max over the points s and both orders of c_A(x[:s]) * c_B(x[s:])) ** alpha

beside the whole message's confidences c_k(x) of the single intents and c_none(x) of "none of them"
(`confidence.py`, which sum to 1). Every confidence is its share: c_k / (1 + sum m), m_AB / (1 + sum m),
so the ranking still sums to at most 1 and a message unlike the training data keeps a large "none".

`alpha` and `beta` are fitted per bot (least log loss, under Gaussian priors at 1 and 0) on the held-out
single-intent messages, the bot's own joined examples (which the classifier never trains on) and pairs of
held-out messages of each joined intent's two parts put together.
"""

import random
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np
import torch
from torch.nn import functional
from transformers import PreTrainedTokenizerBase

from bert_intent.combination import minimise
from bert_intent.encoding import tokenize

# Each part has at least this many tokens: one character alone is no request.
MIN_PART_TOKENS = 2
# Long messages are split at this many evenly spread points at most (each point costs two classifications).
MAX_SPLIT_POINTS = 32
# Held-out pairs put together per joined intent for the fit.
PAIRS_PER_JOINED_INTENT = 12
# Standard deviation of the priors on log(alpha) and beta.
_PRIOR_SCALE = 1.0
_LEAST_CONFIDENCE = 1e-6

ConfidencesOf = Callable[[List[str]], np.ndarray]


@dataclass(frozen=True)
class JoinedIntent:
    """A declared multi-intent: its name as in the training data and its two parts' names."""

    name: str
    parts: Tuple[str, str]

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "parts": list(self.parts)}

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "JoinedIntent":
        return cls(values["name"], tuple(values["parts"]))


@dataclass(frozen=True)
class Decision:
    """How joined intents weigh against single ones (`alpha`, `beta` above) and how many messages
    chose them (`fitted_on`, 0: the priors)."""

    alpha: float = 1.0
    beta: float = 0.0
    fitted_on: int = 0

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "Decision":
        return cls(**values)


def joined_intents(intents: Sequence[str], symbol: str) -> Tuple[List[JoinedIntent], List[str]]:
    """The names in `intents` to learn from their parts (two parts, each an intent with examples of its
    own), and those joined by `symbol` that cannot be (they stay ordinary labels), both sorted."""
    names = sorted(set(intents))
    single = {name for name in names if symbol not in name}
    joined, ordinary = [], []
    for name in names:
        if symbol not in name:
            continue
        parts = tuple(name.split(symbol))
        if len(parts) == 2 and all(part in single for part in parts) and parts[0] != parts[1]:
            joined.append(JoinedIntent(name, parts))
        else:
            ordinary.append(name)
    return joined, ordinary


def split_points(tokenizer: PreTrainedTokenizerBase, text: str, max_length: int) -> List[int]:
    """Character positions where `text` may be cut into two parts: token starts that leave at least
    MIN_PART_TOKENS tokens on each side, at most MAX_SPLIT_POINTS of them, evenly spread."""
    offsets = tokenize(tokenizer, [text], max_length)["offset_mapping"][0]
    starts = [start for start, end in offsets if end > start]
    points = starts[MIN_PART_TOKENS : len(starts) - MIN_PART_TOKENS + 1]
    if len(points) > MAX_SPLIT_POINTS:
        points = [points[index] for index in np.linspace(0, len(points) - 1, MAX_SPLIT_POINTS).round().astype(int)]
    return sorted(set(points))


def log_part_scores(
    confidences_of: ConfidencesOf, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int,
    joined: Sequence[JoinedIntent], labels: Sequence[str],
) -> np.ndarray:
    """(texts x joined intents): log of the best c_A(before) * c_B(after) over the split points and both
    orders; -inf for a text too short to split. `confidences_of` gives the single intents' confidences
    (one row per text, columns in `labels` order) and is called once per text, on all its parts."""
    index = {label: position for position, label in enumerate(labels)}
    pairs = np.array([[index[part] for part in intent.parts] for intent in joined], dtype=int).reshape(-1, 2)
    scores = np.full((len(texts), len(joined)), -np.inf)
    for row, text in enumerate(texts):
        points = split_points(tokenizer, text, max_length)
        if not points or not len(joined):
            continue
        parts = confidences_of([text[:point] for point in points] + [text[point:] for point in points])
        log_parts = np.log(np.clip(parts, _LEAST_CONFIDENCE, None))
        before, after = log_parts[: len(points)], log_parts[len(points) :]
        in_order = before[:, pairs[:, 0]] + after[:, pairs[:, 1]]
        reversed_order = before[:, pairs[:, 1]] + after[:, pairs[:, 0]]
        scores[row] = np.maximum(in_order, reversed_order).max(axis=0)
    return scores


def shares(single: np.ndarray, log_joined: np.ndarray, decision: Decision) -> np.ndarray:
    """The confidences of the single intents, then of the joined ones (texts x (intents + joined)):
    each one's share beside "none of them" (see the module docstring)."""
    with torch.no_grad():
        return _shares(torch.as_tensor(single, dtype=torch.float64), torch.as_tensor(log_joined, dtype=torch.float64),
                       torch.tensor([np.log(decision.alpha), decision.beta], dtype=torch.float64)).numpy()


def _shares(single: torch.Tensor, log_joined: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """`shares` with (log alpha, beta) as `values`, differentiable in them."""
    none = (1 - single.sum(dim=-1, keepdim=True)).clamp(min=_LEAST_CONFIDENCE)
    joined = values[0].exp() * log_joined + values[1]
    logits = torch.cat([torch.log(single.clamp(min=_LEAST_CONFIDENCE)), torch.log(none), joined], dim=-1)
    probabilities = functional.softmax(logits, dim=-1)
    count = single.shape[-1]
    return torch.cat([probabilities[..., :count], probabilities[..., count + 1 :]], dim=-1)


def fit(single: np.ndarray, log_joined: np.ndarray, targets: Sequence[int]) -> Decision:
    """The decision of least log loss for messages with these confidences and part scores whose true
    intents are `targets` (columns of `shares`: single intents first, then joined), under the priors;
    the priors themselves without messages."""
    if len(targets) == 0:
        return Decision()
    single_t = torch.as_tensor(single, dtype=torch.float64)
    joined_t = torch.as_tensor(np.maximum(log_joined, np.log(_LEAST_CONFIDENCE) * 2), dtype=torch.float64)
    target = torch.as_tensor(np.asarray(targets), dtype=torch.long)
    prior = Decision()
    start = torch.tensor([np.log(prior.alpha), prior.beta], dtype=torch.float64)

    def loss(values: torch.Tensor) -> torch.Tensor:
        probabilities = _shares(single_t, joined_t, values)
        log_loss = -torch.log(probabilities.gather(1, target[:, None]).clamp(min=1e-12)).sum()
        return log_loss + ((values - start) / _PRIOR_SCALE).square().sum() / 2

    log_alpha, beta = minimise(loss, start).tolist()
    return Decision(float(np.exp(log_alpha)), float(beta), len(target))


def joined_training_messages(
    texts: Sequence[str], intents: Sequence[str], joined: Sequence[JoinedIntent], seed: int
) -> List[Tuple[str, str]]:
    """Up to PAIRS_PER_JOINED_INTENT messages per joined intent made of a message of each part (from
    `texts`, whose intents are `intents`), in either order, joined by a space."""
    generator = random.Random(seed)
    made = []
    for intent in joined:
        first = [text for text, label in zip(texts, intents) if label == intent.parts[0]]
        second = [text for text, label in zip(texts, intents) if label == intent.parts[1]]
        if not first or not second:
            continue
        for _ in range(PAIRS_PER_JOINED_INTENT):
            pair = [generator.choice(first), generator.choice(second)]
            generator.shuffle(pair)
            made.append((" ".join(pair), intent.name))
    return made


def fit_on_held_out(
    confidences_of: ConfidencesOf, tokenizer: PreTrainedTokenizerBase, max_length: int, labels: Sequence[str],
    joined: Sequence[JoinedIntent], held_out: Sequence[Tuple[str, str]], joined_examples: Sequence[Tuple[str, str]],
    seed: int,
) -> Decision:
    """Fit the decision on held-out single-intent (text, intent) messages, the bot's joined examples
    and held-out pairs put together (`confidences_of`: the classifier as trained without them)."""
    if not joined or not held_out:
        return Decision()
    texts, intents = zip(*held_out)
    messages = list(held_out) + list(joined_examples) + joined_training_messages(texts, intents, joined, seed)
    columns = {name: position for position, name in enumerate(list(labels) + [intent.name for intent in joined])}
    messages = [(text, intent) for text, intent in messages if intent in columns]
    message_texts = [text for text, _ in messages]
    single = confidences_of(message_texts)
    log_joined = log_part_scores(confidences_of, tokenizer, message_texts, max_length, joined, labels)
    return fit(single, log_joined, [columns[intent] for _, intent in messages])
