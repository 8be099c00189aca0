"""Examples as the network reads them: the one tokenizer call, the entity types to learn, each token's
tag, and the collator that pads a batch."""

import logging
from typing import Any, Dict, List, Sequence, Tuple

import torch
from transformers import BatchEncoding, DataCollatorWithPadding, PreTrainedTokenizerBase

from bert_intent import entities
from bert_intent.entities import EntityType
from bert_intent.errors import BertIntentError

logger = logging.getLogger(__name__)

# Annotations that cannot be learned from are warned about one by one up to this many, then counted.
_ANNOTATION_WARNINGS = 10


def tokenize(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int,
    return_tensors: Any = None,
    padding: bool = False,
    offsets: bool = True,
) -> BatchEncoding:
    """Token ids, attention mask and (with `offsets`) each token's character offsets (`offset_mapping`)
    of `texts`, truncated to `max_length` tokens: how every part of the package reads a message."""
    return tokenizer(
        list(texts),
        padding=padding,
        truncation=True,
        max_length=max_length,
        return_tensors=return_tensors,
        return_offsets_mapping=offsets,
    )


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
    """Pads the tokenizer's outputs as DataCollatorWithPadding does, and entity tags with IGNORED."""

    def __call__(self, features: List[Dict[str, Any]]) -> Dict[str, Any]:
        tags = [feature["entity_tags"] for feature in features if "entity_tags" in feature]
        batch = super().__call__([{key: value for key, value in feature.items() if key != "entity_tags"} for feature in features])
        if tags:
            width = batch["input_ids"].shape[1]
            batch["entity_tags"] = torch.tensor([row + [entities.IGNORED] * (width - len(row)) for row in tags])
        return batch
