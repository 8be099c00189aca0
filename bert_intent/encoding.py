"""Examples as the network reads them: the one tokenizer call (with where each word starts, by jieba's
segmentation), the entity types to learn, each token's tag, and the collator that pads a batch."""

import logging
from functools import lru_cache
from typing import Any, Dict, List, Sequence, Set, Tuple

import torch
from transformers import BatchEncoding, DataCollatorWithPadding, PreTrainedTokenizerBase

from bert_intent import entities
from bert_intent.entities import EntityType
from bert_intent.errors import BertIntentError
from bert_intent.hashing import IN_WORD, NO_WORD, WORD_START

logger = logging.getLogger(__name__)

# Annotations that cannot be learned from are warned about one by one up to this many, then counted.
_ANNOTATION_WARNINGS = 10
WORD_STARTS = "word_starts"  # the network's input: where each word starts (`word_starts`)


def tokenize(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int,
    return_tensors: Any = None,
    padding: bool = False,
    offsets: bool = True,
) -> BatchEncoding:
    """Token ids, attention mask, where words start (`WORD_STARTS`) and (with `offsets`) each token's
    character offsets (`offset_mapping`) of `texts`, truncated to `max_length` tokens: how every part of
    the package reads a message."""
    encodings = tokenizer(list(texts), padding=padding, truncation=True, max_length=max_length, return_offsets_mapping=True)
    encodings[WORD_STARTS] = [word_starts(text, row) for text, row in zip(texts, encodings["offset_mapping"])]
    if not offsets:
        encodings.pop("offset_mapping")
    return BatchEncoding(dict(encodings), tensor_type=return_tensors)


def word_starts(text: str, offsets: Sequence[Tuple[int, int]]) -> List[int]:
    """For each token (its character offsets in `text`): WORD_START where one of the text's words starts
    (jieba's segmentation: a Chinese word, or a word between spaces), IN_WORD inside one, NO_WORD for
    special tokens and padding (which have no characters)."""
    starts = _word_start_positions(text)
    return [NO_WORD if end <= start else WORD_START if start in starts else IN_WORD for start, end in offsets]


def load_segmenter() -> None:
    """Load jieba's dictionary now (about half a second), not at the first message."""
    _segmenter().initialize()


def _word_start_positions(text: str) -> Set[int]:
    return {start for word, start, _ in _segmenter().tokenize(text) if word.strip()}


@lru_cache(maxsize=1)
def _segmenter() -> Any:
    import jieba

    jieba.setLogLevel(logging.WARNING)  # not "Building prefix dict..." on stderr at its first use
    return jieba


def batches_by_length(texts: Sequence[str], batch_size: int) -> List[List[int]]:
    """The indices of `texts` in batches of `batch_size`, shortest texts first: batches of similar
    lengths waste little compute on padding."""
    order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def valid_unicode(text: str) -> str:
    """`text` with lone surrogates (which Python strings allow and tokenizers reject) replaced by U+FFFD."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def entity_types_to_learn(
    annotations: Sequence[Sequence[Dict[str, Any]]], entity_recognition: bool, intent_classification: bool
) -> List[EntityType]:
    """The entity types to learn: every annotated one, with `entity_recognition` on."""
    if not entity_recognition:
        return []
    types = entities.entity_types(annotations)
    if not types and not intent_classification:
        raise BertIntentError(
            "BertIntentClassifier has intent_classification: false, so it only extracts entities, but the "
            "training data annotates none. Annotate entities (e.g. `- 明天[上海](city)会下雨吗`) or set "
            "intent_classification: true."
        )
    if not types:
        logger.info("The training data annotates no entities, so BertIntentClassifier learns intents only.")
    return types


def examples(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    intents: Sequence[str],
    label_ids: Sequence[int],
    annotations: Sequence[Sequence[Dict[str, Any]]],
    types: Sequence[EntityType],
    max_length: int,
) -> List[Dict[str, Any]]:
    """One training example per text: its token ids and attention mask, `labels` (the intent id) and,
    with entity types, `entity_tags` (one tag per token; see `entities`)."""
    encodings = tokenize(tokenizer, texts, max_length)
    offsets = encodings.pop("offset_mapping")
    encoded = [
        {**{key: values[index] for key, values in encodings.items()}, "labels": label_id}
        for index, label_id in enumerate(label_ids)
    ]
    if types:
        for example, tags in zip(encoded, _entity_tags(texts, intents, offsets, annotations, types)):
            example["entity_tags"] = tags
    return encoded


def _entity_tags(
    texts: Sequence[str],
    intents: Sequence[str],
    offsets: Sequence[Sequence[Tuple[int, int]]],
    annotations: Sequence[Sequence[Dict[str, Any]]],
    types: Sequence[EntityType],
) -> List[List[int]]:
    """Each example's token tags; a warning names every annotation that cannot be learned from."""
    all_tags, problems = [], []
    for text, intent, token_offsets, text_annotations in zip(texts, intents, offsets, annotations):
        tags, text_problems = entities.token_tags(text, token_offsets, text_annotations, list(types))
        all_tags.append(tags)
        problems += [f"Training example '{text}' (intent '{intent}'): the entity {problem}." for problem in text_problems]
    for problem in problems[:_ANNOTATION_WARNINGS]:
        logger.warning("BertIntentClassifier: %s It is left out of training (the rest of the example is used).", problem)
    if len(problems) > _ANNOTATION_WARNINGS:
        logger.warning(
            "BertIntentClassifier: %d more entity annotations cannot be learned from, for the same reasons.",
            len(problems) - _ANNOTATION_WARNINGS,
        )
    return all_tags


class PadWithTags(DataCollatorWithPadding):
    """Pads the tokenizer's outputs as DataCollatorWithPadding does, entity tags with IGNORED and word
    starts with NO_WORD."""

    def __call__(self, features: List[Dict[str, Any]]) -> Dict[str, Any]:
        padded = {"entity_tags": entities.IGNORED, WORD_STARTS: NO_WORD}
        rows = {name: [feature[name] for feature in features if name in feature] for name in padded}
        batch = super().__call__([{key: value for key, value in feature.items() if key not in padded} for feature in features])
        width = batch["input_ids"].shape[1]
        for name, values in rows.items():
            if values:
                batch[name] = torch.tensor([list(row) + [padded[name]] * (width - len(row)) for row in values])
        return batch
