"""Entities as token tags: BIO labels from character annotations, and entities from tag probabilities.

A type is an entity with its role and group (`city` as `destination`), so roles and groups are learned
as types of their own. Tag 0 is outside any entity; type i has tags 2i + 1 (begins) and 2i + 2 (inside).
Tokens map to characters through the fast tokenizer's offset mapping, so annotations need no word
tokenizer and none is dropped for not matching word boundaries. Where no annotation of the training
data begins or ends inside a word of the checkpoint's tokenizer (`whole_words`; BERT's words are a
Chinese character, or a run of digits or Latin letters that WordPiece may split into pieces), entities
are found as whole words: an 11-digit order number whole or not at all. The decoding also weighs how
the training examples' tags follow each other (`transition_log_probabilities`), as much as the held-out
messages show it helps (`fit_transition_weight`): 的 inside a song's title, say, rather than two titles.
"""

import functools
from dataclasses import asdict, dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

OUTSIDE = 0
# A text's tokens' character offsets, their tag probabilities (tokens x tags) and, per token, whether it
# continues the word of the token before it (`encoding.WORD_CONTINUES`).
Reading = Tuple[np.ndarray, np.ndarray, np.ndarray]
# Tag id of tokens the loss ignores: [CLS], [SEP] and padding (PyTorch's cross-entropy default).
IGNORED = -100
# The weights of the training examples' tag transitions the held-out messages choose from
# (`fit_transition_weight`); 0, the prior, decodes by the tags' probabilities alone.
TRANSITION_WEIGHTS = (0.0, 0.25, 0.5, 1.0)


@dataclass(frozen=True)
class EntityType:
    """What an entity is: its name, with the role and group it plays when annotated with them."""

    entity: str
    role: Optional[str] = None
    group: Optional[str] = None

    @classmethod
    def of(cls, annotation: Dict[str, Any]) -> "EntityType":
        return cls(str(annotation["entity"]), _optional_text(annotation.get("role")), _optional_text(annotation.get("group")))

    def sort_key(self) -> Tuple[str, str, str]:
        return self.entity, self.role or "", self.group or ""

    def to_dict(self) -> Dict[str, Optional[str]]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "EntityType":
        return cls(**values)


def _optional_text(value: Any) -> Optional[str]:
    return None if value is None else str(value)


def begin_tag(type_index: int) -> int:
    return 2 * type_index + 1


def tag_count(types: Sequence[EntityType]) -> int:
    """Tags of the tagging head: outside, and begins/inside for each type."""
    return 1 + 2 * len(types)


def entity_types(annotations: Iterable[Sequence[Dict[str, Any]]]) -> List[EntityType]:
    """The sorted types of every annotation (one list of annotations per message)."""
    return sorted({EntityType.of(annotation) for message in annotations for annotation in message}, key=EntityType.sort_key)


def token_tags(
    text: str,
    offsets: Sequence[Tuple[int, int]],
    annotations: Sequence[Dict[str, Any]],
    types: Sequence[EntityType],
) -> Tuple[List[int], List[str]]:
    """The tag of every token (IGNORED for special tokens, whose offsets are (0, 0)) and a description
    of each annotation that cannot be learned from: an entity type not in `types`, bad offsets, an
    overlap with an earlier one, a boundary inside a token, or no token (cut off at max_length, or only
    characters the tokenizer drops)."""
    type_index = {entity_type: index for index, entity_type in enumerate(types)}
    tags = [OUTSIDE if end > start else IGNORED for start, end in offsets]
    taken = [False] * len(text)
    problems = []
    for annotation in sorted(annotations, key=lambda item: (item.get("start", 0), item.get("end", 0))):
        start, end = annotation.get("start"), annotation.get("end")
        described = f"'{annotation.get('value', '')}' ({annotation.get('entity')})"
        if EntityType.of(annotation) not in type_index:
            problems.append(f"{described} is of an entity type this model does not know")
            continue
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
            problems.append(f"{described} has character offsets {start}-{end} outside the text")
            continue
        if any(taken[start:end]):
            problems.append(f"{described} overlaps another entity, and a character can be in only one")
            continue
        inside = [index for index, (first, last) in enumerate(offsets) if last > first and first < end and last > start]
        if any(offsets[index][0] < start or offsets[index][1] > end for index in inside):
            problems.append(f"{described} begins or ends inside a token of the tokenizer")
            continue
        if not inside:
            problems.append(f"{described} covers no token (it is past max_length, or the tokenizer drops its characters)")
            continue
        begin = begin_tag(type_index[EntityType.of(annotation)])
        for position, index in enumerate(inside):
            tags[index] = begin if position == 0 else begin + 1
        taken[start:end] = [True] * (end - start)
    return tags, problems


def spans(tags: Sequence[int]) -> List[Tuple[int, int, int]]:
    """(type index, first token, last token) of each entity in a tag sequence: an entity starts at a
    begins tag (or an inside tag after anything but its own type) and continues over inside tags of
    its type. IGNORED tokens end an entity."""
    found: List[Tuple[int, int, int]] = []
    current: Optional[List[int]] = None
    for position, tag in enumerate(int(tag) for tag in tags):
        if current is not None and tag == begin_tag(current[0]) + 1:
            current[2] = position
            continue
        if current is not None:
            found.append((current[0], current[1], current[2]))
        current = [(tag - 1) // 2, position, position] if tag not in (OUTSIDE, IGNORED) else None
    if current is not None:
        found.append((current[0], current[1], current[2]))
    return found


def span_f1(true_tags: Iterable[Sequence[int]], predicted_tags: Iterable[Sequence[int]]) -> float:
    """Micro-F1 of exact entity spans (type and boundaries) over messages; 1 when neither side has any."""
    true_count = predicted_count = right = 0
    for truth, prediction in zip(true_tags, predicted_tags):
        kept = [tag != IGNORED for tag in truth]
        true_spans = set(spans(truth))
        predicted_spans = set(spans([tag if keep else IGNORED for tag, keep in zip(prediction, kept)]))
        true_count, predicted_count = true_count + len(true_spans), predicted_count + len(predicted_spans)
        right += len(true_spans & predicted_spans)
    return 1.0 if true_count + predicted_count == 0 else 2 * right / (true_count + predicted_count)


@functools.lru_cache(maxsize=None)
def _transition_penalties(num_tags: int) -> np.ndarray:
    """(previous tag, tag): 0 where a tag may follow another, -inf where not (an inside tag only
    follows its own type's begins or inside tag); built once per tag count, not per message."""
    penalties = np.zeros((num_tags, num_tags))
    for inside in range(2, num_tags, 2):
        penalties[:, inside] = -np.inf
        penalties[[inside - 1, inside], inside] = 0.0
    penalties.flags.writeable = False
    return penalties


def whole_words(
    offsets: Sequence[Sequence[Tuple[int, int]]], continues: Sequence[Sequence[int]], annotations: Sequence[Sequence[Dict[str, Any]]]
) -> bool:
    """Whether every annotation begins and ends between words (one row of token offsets, of tokens that
    continue the word before them, and of annotations per text)."""
    for text_offsets, text_continues, text_annotations in zip(offsets, continues, annotations):
        inside_words = {int(start) for (start, end), continued in zip(text_offsets, text_continues) if continued and end > start}
        if any(annotation.get("start") in inside_words or annotation.get("end") in inside_words for annotation in text_annotations):
            return False
    return True


@functools.lru_cache(maxsize=None)
def _within_word_penalties(num_tags: int) -> np.ndarray:
    """(previous tag, tag) within one word: 0 where the word's entity, or its being outside any, goes
    on (outside after outside, inside after its own type's begins or inside tag), -inf elsewhere."""
    penalties = np.full((num_tags, num_tags), -np.inf)
    penalties[OUTSIDE, OUTSIDE] = 0.0
    for inside in range(2, num_tags, 2):
        penalties[[inside - 1, inside], inside] = 0.0
    penalties.flags.writeable = False
    return penalties


def best_tags(probabilities: np.ndarray, continues: Sequence[int], transitions: Optional[np.ndarray] = None) -> np.ndarray:
    """The most likely tag sequence (tokens x tags probabilities) in which every entity starts with its
    begins tag and is made of whole words (`continues`: per token, 1 where it continues the word of
    the token before it) (Viterbi over the tokens' log-probabilities, plus, between words, the
    (previous tag x tag) `transitions` scores)."""
    num_tokens, num_tags = probabilities.shape
    log_probabilities = np.log(np.clip(probabilities, 1e-12, None))
    forbidden, within_word = _transition_penalties(num_tags), _within_word_penalties(num_tags)
    between_words = forbidden if transitions is None else forbidden + transitions
    scores = log_probabilities[0] + between_words[OUTSIDE]  # the first token starts like one after "outside"
    back = np.zeros((num_tokens, num_tags), dtype=int)
    for position in range(1, num_tokens):
        candidates = scores[:, None] + (within_word if continues[position] else between_words)
        back[position] = candidates.argmax(axis=0)
        scores = candidates.max(axis=0) + log_probabilities[position]
    tags = [int(scores.argmax())]
    for position in range(num_tokens - 1, 0, -1):
        tags.append(int(back[position, tags[-1]]))
    return np.array(tags[::-1])


def decode(
    text: str,
    offsets: Sequence[Tuple[int, int]],
    probabilities: np.ndarray,
    continues: Sequence[int],
    types: Sequence[EntityType],
    cut_short: bool = False,
    transitions: Optional[np.ndarray] = None,
) -> List[Dict[str, Any]]:
    """Entities from tag probabilities (tokens x tags, special tokens included): the most likely valid
    tag sequence (`best_tags`, with the tag `transitions` scores) of the text's tokens. An entity's
    confidence is the mean probability of its tokens' tags. In a text `cut_short` (it goes on past the
    last token read), an entity at that token may go on too, so it is left out rather than given part
    of its value."""
    tokens = [index for index, (start, end) in enumerate(offsets) if end > start]
    if not tokens:
        return []
    tags = best_tags(probabilities[tokens], [continues[index] for index in tokens], transitions)
    entities = []
    for type_index, first, last in spans(tags):
        if cut_short and last == len(tokens) - 1:
            continue
        start, end = int(offsets[tokens[first]][0]), int(offsets[tokens[last]][1])
        entity_type = types[type_index]
        entity: Dict[str, Any] = {
            "entity": entity_type.entity,
            "start": start,
            "end": end,
            "value": text[start:end],
            "confidence_entity": float(np.mean([probabilities[tokens[index], tags[index]] for index in range(first, last + 1)])),
        }
        if entity_type.role is not None:
            entity["role"] = entity_type.role
        if entity_type.group is not None:
            entity["group"] = entity_type.group
        entities.append(entity)
    return entities


def transition_log_probabilities(tag_rows: Iterable[Sequence[int]], num_tags: int) -> np.ndarray:
    """log P(tag | previous tag) in the training examples' tag rows (ignored tokens skipped, "outside"
    before the first), add-one smoothed over the transitions a valid sequence may make; 0 where it may
    not (`best_tags` forbids those)."""
    allowed = np.isfinite(_transition_penalties(num_tags))
    counts = np.zeros((num_tags, num_tags))
    for row in tag_rows:
        tags = [OUTSIDE] + [int(tag) for tag in row if tag != IGNORED]
        np.add.at(counts, (tags[:-1], tags[1:]), 1)
    smoothed = np.where(allowed, counts + 1, 0)
    return np.where(allowed, np.log(np.maximum(smoothed, 1) / smoothed.sum(axis=1, keepdims=True)), 0.0)


def fit_transition_weight(
    log_probabilities: Sequence[np.ndarray], tags: Sequence[Sequence[int]], transitions: np.ndarray
) -> Tuple[float, float]:
    """Of `TRANSITION_WEIGHTS`, the lowest weight of the `transitions` scores under which the held-out
    messages' decoded tags (from their tokens x tags log-probabilities; token by token, as the tag
    heads' weights are fitted, without the whole-word rule or a two-request reading) have the best span
    F1 against their `tags`; and that F1."""
    kept = [np.asarray(row) != IGNORED for row in tags]

    def decoded(weight: float) -> List[np.ndarray]:
        rows = []
        for row_log_probabilities, keep in zip(log_probabilities, kept):
            row = np.full(len(keep), OUTSIDE)
            if keep.any():
                row[keep] = best_tags(np.exp(row_log_probabilities[keep]), [0] * int(keep.sum()), weight * transitions)
            rows.append(row)
        return rows

    scores = [span_f1(tags, decoded(weight)) for weight in TRANSITION_WEIGHTS]
    best = int(np.argmax(scores))  # the first of equals: the lowest weight
    return TRANSITION_WEIGHTS[best], scores[best]


def average_readings(
    offsets: Sequence[Tuple[int, int]],
    probabilities: np.ndarray,
    other_offsets: Sequence[Tuple[int, int]],
    other_probabilities: np.ndarray,
) -> np.ndarray:
    """A text's tag probabilities (tokens x tags, at its tokens' character `offsets`) averaged, token by
    token, with those of another reading of the same characters (e.g. its parts read alone, their
    offsets shifted to the text's); tokens the other reading splits differently keep their own."""
    other = {(int(start), int(end)): row for row, (start, end) in enumerate(other_offsets) if end > start}
    averaged = np.array(probabilities, copy=True)
    for token, (start, end) in enumerate(offsets):
        row = other.get((int(start), int(end))) if end > start else None
        if row is not None:
            averaged[token] = (probabilities[token] + other_probabilities[row]) / 2
    return averaged
