"""Two intents in one message, learned from the single intents' examples (Rasa's multi-intents).

A bot declares a multi-intent the Rasa way: examples whose intent is two intents' names joined by
`intent_split_symbol` (`book_flight+ask_weather`), listed in the domain. When both parts are intents
with examples of their own, the classifier does not learn the joined name as a label: it reads the
message as two parts. The joined intent (A, B) scores

    p_AB(x) = max over the split points s and both orders of c_A(x[:s]) * c_B(x[s:])

with the single intents' confidences c (`confidence.py`) of the text before and the text after. Reading
every part alone would cost two network runs per point between two tokens, so the network first reads
them all in one run, pooling the whole message's token states over each part (`network.py`); the parts
at the READ_ALONE_POINTS best points are then read alone, and they give p_AB. How many requests the message holds is a
logistic decision on how much better the best pair explains it than the whole message's best
explanation, a single intent or "none of them" (c_none = 1 - sum c_k):

    P(two | x) = sigmoid(alpha * (log max_AB p_AB(x) - log max(c_1(x), ..., c_K(x), c_none(x))) + beta)

P(two) divides what the whole message's confidences give the bot's intents, sum_k c_k(x): the single
intents get (1 - P(two)) * c_k(x), the joined ones P(two) * sum_k c_k(x) times each joined intent's share
of the pairs' scores, softmax(alpha * log p_AB(x)), but at most P(two) * p_AB(x): a joined intent is no
surer than its two parts read alone. "None of them" keeps at least 1 - sum_k c_k(x), as without
multi-intents, the single intents keep their order, and a message unlike the training data (gibberish,
pasted logs) stays unknown however its parts score. The entities of a message read as two average the
whole message's tag probabilities with those of its two parts read alone at the chosen split point,
moved to the edge of a word it would cut (`entity_cut`).

`alpha` and `beta` are fitted per bot (least log loss, under wide Gaussian priors at 1 and 0) on the
held-out single-intent messages, the bot's own joined examples (which the classifier never trains on)
and pairs of held-out messages of each joined intent's two parts put together, read also where they
meet (a search that misses that point would only pull the line down). The joined messages weigh the
prior share of two-intent messages (`prior_share`).
"""

import random
from dataclasses import asdict, dataclass
from typing import Any, Callable, Container, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from scipy.special import expit
from torch.nn import functional

from bert_intent.combination import minimise
from bert_intent.encoding import word_spans
from bert_intent.entities import Reading, average_readings

# Each part has at least this many tokens: one or two characters are a slot value (明天, 上海) or a
# keyword, not a request of their own (3 against 2: fewer single messages read as two and more two-request
# ones found, on the example bot and CAIS alike; docs/held-out-decisions.md, session 69).
MIN_PART_TOKENS = 3
# Long messages are split at this many evenly spread points at most (each point costs two classifications).
MAX_SPLIT_POINTS = 32
# A message is first read in parts pooled from its whole reading (one network run), then the parts at
# this many of its best split points are read again alone, as messages of their own.
READ_ALONE_POINTS = 2
# Held-out pairs put together per joined intent for the fit.
PAIRS_PER_JOINED_INTENT = 12
# Standard deviation of the priors on log(alpha) and beta: wide, so that a few dozen held-out messages
# can make the decision sharp (alpha 20 is 3 from the prior).
_PRIOR_SCALE = 3.0
_LOWEST_EVIDENCE = -30.0
_LEAST_CONFIDENCE = 1e-6

ConfidencesOf = Callable[[List[str]], np.ndarray]
ScoresOf = Callable[[List[str]], Tuple[np.ndarray, np.ndarray]]


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


def split_points(offsets: Sequence[Sequence[int]]) -> List[int]:
    """Character positions where a text may be cut into two parts, from its tokens' character `offsets`
    (special and padding tokens, which are empty, are skipped): token starts that leave at least
    MIN_PART_TOKENS tokens on each side, at most MAX_SPLIT_POINTS of them, evenly spread."""
    starts = [int(start) for start, end in offsets if end > start]
    points = starts[MIN_PART_TOKENS : len(starts) - MIN_PART_TOKENS + 1]
    if len(points) > MAX_SPLIT_POINTS:
        points = [points[index] for index in np.linspace(0, len(points) - 1, MAX_SPLIT_POINTS).round().astype(int)]
    return sorted(set(points))


def part_mask(offsets: Sequence[Sequence[int]], attention_mask: np.ndarray, points: Sequence[int]) -> np.ndarray:
    """(1 + 2 x points, tokens): the tokens the whole message reads ([CLS] and [SEP] included), then those
    before each split point ([CLS] included), then those after each ([SEP] included)."""
    starts = {int(start): token for token, (start, end) in reversed(list(enumerate(offsets))) if end > start}
    positions = np.arange(len(attention_mask))
    cuts = np.array([starts[point] for point in points], dtype=int).reshape(-1, 1)
    before, after = positions < cuts, positions >= cuts
    return np.concatenate([attention_mask[None], before * attention_mask, after * attention_mask]).astype(attention_mask.dtype)


def part_masks(offsets: np.ndarray, attention_mask: np.ndarray, points: Sequence[Sequence[int]]) -> np.ndarray:
    """(texts, 1 + 2 x most points, tokens): each padded text's `part_mask`, with rows of zeros (parts
    that read nothing) after those of a text with fewer points."""
    masks = [part_mask(row_offsets, row_mask, row_points) for row_offsets, row_mask, row_points in zip(offsets, attention_mask, points)]
    padded = np.zeros((len(masks), max(len(mask) for mask in masks), attention_mask.shape[1]), dtype=attention_mask.dtype)
    for row, mask in enumerate(masks):
        padded[row, : len(mask)] = mask
    return padded


def _log_pairs_per_point(part_confidences: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """(points, joined): log c_A(before) + log c_B(after) at each point, the better of both orders, from
    the parts' confidences (before each point, then after each)."""
    log_parts = np.log(np.clip(part_confidences, _LEAST_CONFIDENCE, None))
    before, after = np.split(log_parts, 2)
    return np.maximum(before[:, pairs[:, 0]] + after[:, pairs[:, 1]], before[:, pairs[:, 1]] + after[:, pairs[:, 0]])


def _pairs(joined: Sequence[JoinedIntent], labels: Sequence[str]) -> np.ndarray:
    index = {label: position for position, label in enumerate(labels)}
    return np.array([[index[part] for part in intent.parts] for intent in joined], dtype=int).reshape(-1, 2)


def best_points(
    part_confidences: np.ndarray, points: Sequence[int], joined: Sequence[JoinedIntent], labels: Sequence[str]
) -> List[int]:
    """The READ_ALONE_POINTS split points whose parts explain the message best as a joined intent, from
    the parts' confidences (before each point, then after each), in the text's order."""
    scores = _log_pairs_per_point(part_confidences, _pairs(joined, labels)).max(axis=1)
    return sorted(points[index] for index in np.argsort(-scores, kind="stable")[:READ_ALONE_POINTS])


def log_part_scores(
    confidences_of: ConfidencesOf, texts: Sequence[str], points: Sequence[Sequence[int]],
    joined: Sequence[JoinedIntent], labels: Sequence[str],
) -> Tuple[np.ndarray, np.ndarray]:
    """(texts x joined intents): log of the best c_A(before) * c_B(after) over each text's split
    `points` and both orders (-inf for a text without points), and the split point that gives it (-1).
    `confidences_of` gives the single intents' confidences (one row per text, columns in `labels`
    order) and is called once, on all the texts' parts."""
    pairs = _pairs(joined, labels)
    scores = np.full((len(texts), len(joined)), -np.inf)
    cuts = np.full((len(texts), len(joined)), -1)
    split = [row for row, row_points in enumerate(points) if row_points] if len(joined) else []
    if not split:
        return scores, cuts
    parts = [[texts[row][:cut] for cut in points[row]] + [texts[row][cut:] for cut in points[row]] for row in split]
    read = confidences_of([part for message in parts for part in message])
    ends = np.cumsum([len(message) for message in parts])[:-1]
    for row, confidences in zip(split, np.split(read, ends)):
        per_point = _log_pairs_per_point(confidences, pairs)
        scores[row] = per_point.max(axis=0)
        cuts[row] = np.asarray(points[row])[per_point.argmax(axis=0)]
    return scores, cuts


def shares(single: np.ndarray, log_joined: np.ndarray, decision: Decision) -> np.ndarray:
    """The confidences of the single intents, then of the joined ones (texts x (intents + joined)),
    from the single intents' confidences and `log_part_scores` (see the module docstring)."""
    two = _probability_of_two(evidence_for_two(single, log_joined), decision.alpha, decision.beta)
    sharpened = np.where(np.isfinite(log_joined), decision.alpha * np.nan_to_num(log_joined, neginf=0.0), -np.inf)
    highest = np.max(sharpened, axis=1, keepdims=True, initial=-np.inf)
    which = np.exp(sharpened - np.where(np.isfinite(highest), highest, 0.0))
    which = which / np.maximum(which.sum(axis=1, keepdims=True), _LEAST_CONFIDENCE)
    supported = np.minimum(single.sum(axis=1, keepdims=True) * which, np.exp(log_joined))  # by the parts alone
    return np.concatenate([(1 - two)[:, None] * single, two[:, None] * supported], axis=1)


def readings_of_two(
    texts: Sequence[str], top_joined: np.ndarray, cuts: np.ndarray, readings: Sequence[Optional[Reading]],
    part_readings: Dict[str, Reading],
) -> List[Optional[Reading]]:
    """The texts' tag `readings`, those read as two requests (`top_joined`: the top joined intent,
    negative for a single one) averaged with their two parts' `part_readings` (by the part's text; none
    when it has nothing readable) at that intent's split point (`cuts`, `log_part_scores`): the whole
    message's reading lets one request's words sway the other's tags, a part's own reading errs where it
    was cut, and the tagger learned from single requests (measured: docs/benchmarks.md)."""
    averaged = list(readings)
    for row in np.flatnonzero(top_joined >= 0):
        cut, reading = int(cuts[row, top_joined[row]]), readings[row]
        if cut <= 0 or reading is None:
            continue
        cut = entity_cut(texts[row], cut, part_readings)
        found = [(shift, part_readings.get(part)) for shift, part in ((0, texts[row][:cut]), (cut, texts[row][cut:]))]
        parts = [(shift, part) for shift, part in found if part is not None]
        if parts:
            part_offsets = np.concatenate([part[0] + shift for shift, part in parts])
            part_probabilities = np.concatenate([part[1] for _, part in parts])
            offsets, probabilities, continues = reading
            averaged[row] = offsets, average_readings(offsets, probabilities, part_offsets, part_probabilities), continues
    return averaged


def entity_cut(text: str, cut: int, read_alone: Container[str]) -> int:
    """Where the entities of `text`, read as two requests split at `cut`, are read: `cut`, or where it
    falls inside a word (jieba's: 然|后), the nearer edge of that word whose two parts were read alone (a
    request neither starts nor ends inside a word, and a part that does reads its stray character as
    part of an entity). The intents keep `cut`: across requests, the words found are less reliable."""
    for start, end in word_spans(text):
        if start < cut < end:
            for edge in sorted((start, end), key=lambda edge: abs(edge - cut)):
                if 0 < edge < len(text) and text[:edge] in read_alone and text[edge:] in read_alone:
                    return edge
    return cut


def evidence_for_two(single: np.ndarray, log_joined: np.ndarray) -> np.ndarray:
    """Per text: log of the best pair's score over the whole message's best explanation, a single intent
    or "none of them" (-inf: no pair)."""
    best_pair = log_joined.max(axis=1) if log_joined.shape[1] else np.full(len(single), -np.inf)
    best_whole = np.maximum(single.max(axis=1, initial=0.0), 1 - single.sum(axis=1))
    return best_pair - np.log(np.clip(best_whole, _LEAST_CONFIDENCE, None))


def _probability_of_two(evidence: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        logits = np.where(np.isfinite(evidence), alpha * np.nan_to_num(evidence, neginf=0.0) + beta, -np.inf)
    return expit(logits)


def prior_share(joined_intents: int, single_intents: int, joined_examples: int, single_examples: int, balanced: bool) -> float:
    """The prior share of two-intent messages: with `balanced` class weights, that of the joined intents
    among all declared intents (each equally likely, as the classifier sees the single ones); otherwise
    that of the joined examples among all training examples. Rasa bots give a multi-intent a few examples
    only, so the examples' share would say two requests are rarer than the bot's own intents say."""
    if balanced:
        return joined_intents / max(1, joined_intents + single_intents)
    return joined_examples / max(1, joined_examples + single_examples)


def fit(
    single: np.ndarray, log_joined: np.ndarray, targets: Sequence[int], joined_share: float, highest_beta: float = np.inf
) -> Decision:
    """The decision of least log loss for messages with these confidences and part scores whose true
    intents are `targets` (columns of `shares`: single intents first, then joined), under the priors;
    the priors themselves without messages. The messages of joined intents weigh `joined_share` of
    all (`prior_share`): the rarer two-intent messages are, the more evidence the decision asks. With
    `highest_beta`, beta is at most that (alpha refitted at the bound): 0 reads a message as two only
    where its best pair explains it at least as well as its best single intent (measured, not the
    default: docs/held-out-decisions.md)."""
    if len(targets) == 0:
        return Decision()
    is_joined = np.asarray(targets) >= single.shape[1]
    evidence = torch.as_tensor(np.maximum(evidence_for_two(single, log_joined), _LOWEST_EVIDENCE), dtype=torch.float64)
    truth = torch.as_tensor(is_joined, dtype=torch.float64)
    weights = torch.as_tensor(_weights(is_joined, joined_share), dtype=torch.float64)
    prior = Decision()
    start = torch.tensor([np.log(prior.alpha), prior.beta], dtype=torch.float64)

    def loss(values: torch.Tensor) -> torch.Tensor:
        logits = values[0].exp() * evidence + values[1]
        log_loss = (weights * functional.binary_cross_entropy_with_logits(logits, truth, reduction="none")).sum()
        return log_loss + ((values - start) / _PRIOR_SCALE).square().sum() / 2

    log_alpha, beta = minimise(loss, start).tolist()
    if beta > highest_beta:  # fit alpha with beta at its bound
        bound = torch.full((1,), highest_beta, dtype=torch.float64)
        log_alpha, beta = minimise(lambda scale: loss(torch.cat([scale, bound])), start[:1]).item(), highest_beta
    return Decision(float(np.exp(log_alpha)), float(beta), len(is_joined))


def _weights(is_joined: np.ndarray, joined_share: float) -> np.ndarray:
    """Per message: 1 for single-intent ones; joined ones together weigh `joined_share` of the total."""
    joined, single = int(is_joined.sum()), int((~is_joined).sum())
    if not joined or not single:
        return np.ones(len(is_joined))
    return np.where(is_joined, joined_share / (1 - joined_share) * single / joined, 1.0)


def joined_training_messages(
    texts: Sequence[str], intents: Sequence[str], joined: Sequence[JoinedIntent], seed: int
) -> List[Tuple[str, str, int, int]]:
    """Up to PAIRS_PER_JOINED_INTENT messages per joined intent made of a message of each part (from
    `texts`, whose intents are `intents`), in either order, joined by a space: (text, joined intent,
    index in `texts` of the message before the space, of the one after)."""
    generator = random.Random(seed)
    made = []
    for intent in joined:
        first, second = ([index for index, label in enumerate(intents) if label == part] for part in intent.parts)
        if not first or not second:
            continue
        for _ in range(PAIRS_PER_JOINED_INTENT):
            pair = [generator.choice(first), generator.choice(second)]
            generator.shuffle(pair)
            made.append((f"{texts[pair[0]]} {texts[pair[1]]}", intent.name, pair[0], pair[1]))
    return made


def fit_on_held_out(
    scores_of: ScoresOf, labels: Sequence[str], joined: Sequence[JoinedIntent], held_out: Sequence[Tuple[str, str]],
    joined_examples: Sequence[Tuple[str, str]], joined_share: float, seed: int,
) -> Decision:
    """Fit the decision on held-out single-intent (text, intent) messages, the bot's joined examples
    and held-out pairs put together (`scores_of`: the classifier's single confidences and log pair
    scores, as trained without them), the joined ones weighing `joined_share` of all; a pair also
    scores where its two messages meet (docs/held-out-decisions.md, session 67)."""
    if not joined or not held_out:
        return Decision()
    made = joined_training_messages(*zip(*held_out), joined, seed)
    messages = list(held_out) + list(joined_examples) + [(text, intent) for text, intent, _, _ in made]
    columns = {name: position for position, name in enumerate(list(labels) + [intent.name for intent in joined])}
    pairs = _pairs(joined, labels)
    single, log_joined = scores_of([text for text, _ in messages])
    for row, (_, intent, before, after) in enumerate(made, start=len(messages) - len(made)):
        column = columns[intent] - len(labels)
        log_joined[row, column] = max(log_joined[row, column], _log_pairs_per_point(single[[before, after]], pairs)[0, column])
    return fit(single, log_joined, [columns[intent] for _, intent in messages], joined_share)


def describe(joined: Sequence[JoinedIntent], decision: Decision) -> str:
    """The training log's line on the multi-intents."""
    fitted = f"fitted on {decision.fitted_on} held-out and joined messages" if decision.fitted_on else "the priors: nothing was held out"
    return (
        f"Multi-intents recognised from their parts: {', '.join(intent.name for intent in joined)} "
        f"(decision alpha {decision.alpha:.2f}, beta {decision.beta:.2f}, {fitted})."
    )
