"""Examples as the network reads them: the one tokenizer call (with the hashed n-grams inside each word,
by jieba's segmentation), the entity types to learn, each token's tag, and the collator that pads a batch."""

import logging
from functools import lru_cache
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
import torch
from transformers import BatchEncoding, DataCollatorWithPadding, PreTrainedTokenizerBase

from bert_intent import entities
from bert_intent.entities import EntityType
from bert_intent.errors import BertIntentError
from bert_intent.hashing import IN_WORD, NO_WORD, WORD_START, word_ngrams

logger = logging.getLogger(__name__)

# Annotations that cannot be learned from are warned about one by one up to this many, then counted.
_ANNOTATION_WARNINGS = 10
# The network's inputs besides the tokenizer's: the hashed n-grams inside words (`hashing.word_ngrams`) and
# whether each is in the message (0 for padding); (batch, n-grams) each, or the latter (batch, parts,
# n-grams) with the network's `part_mask` (`word_ngrams_in_parts`).
WORD_NGRAMS, WORD_NGRAM_PRESENT = "word_ngrams", "word_ngram_present"
WORD_NGRAM_SPANS = "word_ngram_spans"  # with `offsets`: each word n-gram's first and last token
# With `offsets`: 1 for a token of the same word of the tokenizer as the token before it (a WordPiece
# "##" piece: a long number or a Latin word split up), else 0 (`entities.whole_words`).
WORD_CONTINUES = "word_continues"


def tokenize(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int,
    return_tensors: Any = None,
    padding: bool = False,
    offsets: bool = True,
) -> BatchEncoding:
    """Token ids, attention mask, the word n-grams (`WORD_NGRAMS`, `WORD_NGRAM_PRESENT`) and (with
    `offsets`) each token's character offsets (`offset_mapping`) and each word n-gram's tokens
    (`WORD_NGRAM_SPANS`) of `texts`, truncated to `max_length` tokens: how every part of the package
    reads a message. With `padding` (to the batch's longest message), every column is a numpy
    array (`return_tensors` None) and the word n-grams are padded to the batch's most n-grams; without
    it, lists of rows. With `offsets`, also `WORD_CONTINUES`."""
    encodings = tokenizer(list(texts), padding=padding, truncation=True, max_length=max_length, return_offsets_mapping=True)
    found = [
        word_ngrams(ids, word_starts(text, row)) for text, ids, row in zip(texts, encodings["input_ids"], encodings["offset_mapping"])
    ]
    columns: Dict[str, Any] = dict(encodings)
    if offsets:
        columns[WORD_CONTINUES] = [_continues_word(encodings.word_ids(row)) for row in range(len(texts))]
    if padding:
        # numpy here, not BatchEncoding's conversion of nested lists, which takes longer than the tokenizer.
        columns = {name: np.asarray(values) for name, values in columns.items()}
        columns.update(_padded_word_ngrams(found))
    else:
        columns[WORD_NGRAMS] = [[bucket for bucket, _, _ in row] for row in found]
        columns[WORD_NGRAM_PRESENT] = [[1] * len(row) for row in found]
        columns[WORD_NGRAM_SPANS] = [[(first, last) for _, first, last in row] for row in found]
    if not offsets:
        del columns["offset_mapping"], columns[WORD_NGRAM_SPANS]
    return BatchEncoding(columns, tensor_type=return_tensors)


def _continues_word(word_ids: Sequence[Optional[int]]) -> List[int]:
    """Per token: 1 where it belongs to the same word (the tokenizer's `word_ids`) as the token before it."""
    return [int(word is not None and word == previous) for previous, word in zip([None, *word_ids], word_ids)]


def _padded_word_ngrams(found: List[List[Tuple[int, int, int]]]) -> Dict[str, np.ndarray]:
    """The word n-gram columns as arrays, each row padded to the batch's most n-grams (at least one)."""
    width = max([1, *map(len, found)])
    columns = np.zeros((len(found), width, 3), dtype=np.int64)  # bucket, first token, last token
    present = np.zeros((len(found), width), dtype=np.int64)
    for row, ngrams in enumerate(found):
        columns[row, : len(ngrams)] = np.array(ngrams, dtype=np.int64).reshape(-1, 3)
        present[row, : len(ngrams)] = 1
    return {WORD_NGRAMS: columns[..., 0], WORD_NGRAM_PRESENT: present, WORD_NGRAM_SPANS: columns[..., 1:]}


def word_starts(text: str, offsets: Sequence[Tuple[int, int]]) -> List[int]:
    """For each token (its character offsets in `text`): WORD_START where one of the text's words starts
    (jieba's segmentation: a Chinese word, or a word between spaces), IN_WORD inside one, NO_WORD for
    special tokens and padding (which have no characters)."""
    starts = _word_start_positions(text)
    return [NO_WORD if end <= start else WORD_START if start in starts else IN_WORD for start, end in offsets]


def word_ngrams_in_parts(spans: np.ndarray, present: np.ndarray, part_mask: np.ndarray) -> np.ndarray:
    """(batch, parts, n-grams): `WORD_NGRAM_PRESENT` for each part of `part_mask` (batch, parts, tokens),
    where an n-gram (its `WORD_NGRAM_SPANS`, (batch, n-grams, 2)) is present only if all its tokens are."""
    before = np.concatenate([np.zeros_like(part_mask[..., :1]), part_mask.cumsum(axis=-1)], axis=-1)  # part tokens before each
    rows, parts = np.arange(len(spans))[:, None, None], np.arange(part_mask.shape[1])[None, :, None]
    first, last = spans[:, None, :, 0], spans[:, None, :, 1]
    inside = before[rows, parts, last + 1] - before[rows, parts, first] == last - first + 1
    return (present[:, None, :] * inside).astype(present.dtype)


def load_segmenter() -> None:
    """Load jieba's dictionary now (about half a second), not at the first message."""
    _segmenter().initialize()


@lru_cache(maxsize=256)
def word_spans(text: str) -> Tuple[Tuple[int, int], ...]:
    """The (start, end) character positions of `text`'s words (jieba's segmentation), spaces left out.
    Kept for the latest texts: a message read as two requests is segmented again where its entities are
    read (`multi_intent.entity_cut`), after its parts (a few texts) were."""
    return tuple((start, end) for word, start, end in _segmenter().tokenize(text) if word.strip())


def _word_start_positions(text: str) -> Set[int]:
    return {start for start, _ in word_spans(text)}


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


def cut_short(text: str, offsets: Sequence[Sequence[int]], tokens_at_most: int) -> bool:
    """Whether `text` goes on past its tokens read (`offsets`, special and padding tokens included):
    they are as many as a message may have besides the special tokens (`tokens_at_most`: `max_length`
    less those) and more than spaces follow the last one."""
    ends = [int(end) for start, end in offsets if end > start]
    return len(ends) >= tokens_at_most and bool(text[max(ends, default=0) :].strip())


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
) -> Tuple[List[Dict[str, Any]], bool]:
    """One training example per text: its token ids, attention mask and word n-grams, `labels` (the
    intent id) and, with entity types, `entity_tags` (one tag per token; see `entities`); and whether
    entities are found as whole words (with entity types, where no annotation cuts a word:
    `entities.whole_words`)."""
    encodings = tokenize(tokenizer, texts, max_length)
    offsets, continues = encodings.pop("offset_mapping"), encodings.pop(WORD_CONTINUES)
    encodings.pop(WORD_NGRAM_SPANS)
    encoded = [
        {**{key: values[index] for key, values in encodings.items()}, "labels": label_id}
        for index, label_id in enumerate(label_ids)
    ]
    if types:
        for example, tags in zip(encoded, _entity_tags(texts, intents, offsets, annotations, types)):
            example["entity_tags"] = tags
    return encoded, bool(types) and entities.whole_words(offsets, continues, annotations)


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
    """Pads the tokenizer's outputs as DataCollatorWithPadding does, entity tags with IGNORED (to the
    tokens' width) and the word n-grams as absent (to the batch's most)."""

    def __call__(self, features: List[Dict[str, Any]]) -> Dict[str, Any]:
        fillers = {"entity_tags": entities.IGNORED, WORD_NGRAMS: 0, WORD_NGRAM_PRESENT: 0}
        rows = {name: [list(feature[name]) for feature in features if name in feature] for name in fillers}
        batch = super().__call__([{key: value for key, value in feature.items() if key not in fillers} for feature in features])
        for name, values in rows.items():
            if values:
                width = batch["input_ids"].shape[1] if name == "entity_tags" else max(1, *map(len, values))
                batch[name] = torch.tensor([row + [fillers[name]] * (width - len(row)) for row in values])
        return batch
