"""Hashed n-grams of token ids, the lexical features of the closed-form heads (`heads.py`).

The message's n-grams and each token's tag windows are tensor arithmetic on `input_ids`, so they export
to the network's ONNX graph. The n-grams inside words (`word_ngrams`) need jieba's segmentation, which
runs on the host at tokenization, so they are hashed there and the graph reads their buckets. All use
one rolling hash of token ids, kept below `_MODULUS` at every step so int64 never overflows.
"""

from typing import Iterator, List, Sequence, Tuple

import torch
from torch.nn import functional

NGRAM_BUCKETS = 2**17
MAX_NGRAM = 4
TAG_NGRAM_BUCKETS = 2**16
# A token's lexical features: the n-grams (first token's offset from it, length) around it.
TAG_WINDOWS = ((0, 1), (-1, 1), (1, 1), (-2, 1), (2, 1), (-1, 2), (0, 2), (-2, 2), (1, 2), (-1, 3))
_TAG_REACH = 2  # the farthest any window reaches from its token
_MULTIPLIER, _MODULUS, _ORDER_OFFSET = 1_000_003, 2_147_483_647, 999_983
# Where a token stands in its word (`encoding.word_starts`): inside it, first of it, or in no word at all
# (special tokens and padding, which also end the word before them).
IN_WORD, WORD_START, NO_WORD = 0, 1, 2
# How a word-bounded n-gram touches its word's edges: neither, the start, the end, both (a family each).
_EDGES = ((False, False), (True, False), (False, True), (True, True))
_WORD_FAMILY_OFFSET = 7 * _ORDER_OFFSET
_FAMILY_OFFSETS = [[_WORD_FAMILY_OFFSET + (4 * family + order) * _ORDER_OFFSET for family in range(len(_EDGES))] for order in range(MAX_NGRAM + 1)]


def ngram_buckets(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Hashed bucket of every token 1- to MAX_NGRAM-gram (n-grams across [CLS]/[SEP] mark the start and
    end), and whether it lies inside the message (1) or touches padding (0); both (batch, n-grams)."""
    buckets, present = [], []
    for order, hashes, mask in _rolling_ngrams(input_ids, attention_mask):
        buckets.append((hashes + order * _ORDER_OFFSET) % NGRAM_BUCKETS)
        present.append(mask)
    return torch.cat(buckets, dim=1), torch.cat(present, dim=1)


def _rolling_ngrams(input_ids: torch.Tensor, mask: torch.Tensor) -> Iterator[Tuple[int, torch.Tensor, torch.Tensor]]:
    """For each order from 1 to MAX_NGRAM: the order, the rolling hash of the token n-gram starting at
    each position, and whether all its tokens are in `mask`; (batch, positions) each."""
    hashes, inside = input_ids, mask
    for order in range(1, MAX_NGRAM + 1):
        if order > 1:
            hashes = (hashes[:, :-1] * _MULTIPLIER + input_ids[:, order - 1 :]) % _MODULUS
            inside = inside[:, :-1] * mask[:, order - 1 :]
        yield order, hashes, inside


def tag_ngram_buckets(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(batch, tokens, windows): the hashed bucket of each `TAG_WINDOWS` n-gram around every token.
    Padding and positions beyond the sequence read as id 0, whatever the tokenizer's padding id, so a
    message's buckets do not depend on its batch-mates."""
    padded = functional.pad(input_ids * attention_mask, (_TAG_REACH, _TAG_REACH))
    length = input_ids.shape[1]
    buckets = []
    for window, (offset, size) in enumerate(TAG_WINDOWS):
        hashes = torch.zeros_like(input_ids) + window * _ORDER_OFFSET
        for position in range(offset, offset + size):
            start = _TAG_REACH + position
            hashes = (hashes * _MULTIPLIER + padded[:, start : start + length]) % _MODULUS
        buckets.append(hashes % TAG_NGRAM_BUCKETS)
    return torch.stack(buckets, dim=2)


def word_ngrams(input_ids: Sequence[int], word_starts: Sequence[int]) -> List[Tuple[int, int, int]]:
    """The token n-grams inside each word as Rasa's `char_wb` reads a word padded with spaces: those
    within it (1 to MAX_NGRAM tokens), those that begin at its start or end at its end with the space
    counted (up to MAX_NGRAM - 1 tokens), and the whole word between both (up to MAX_NGRAM - 2 tokens),
    each edge a hash family of its own (`_EDGES`). `word_starts` says where each token stands (`IN_WORD`,
    `WORD_START`, `NO_WORD`); returns (hashed bucket, first token, last token) per n-gram."""
    length, found = len(input_ids), []
    at_end = [index + 1 == length or word_starts[index + 1] != IN_WORD for index in range(length)]
    for first in range(length):
        if word_starts[first] == NO_WORD:
            continue
        at_start, hashed = word_starts[first] != IN_WORD, 0
        for last in range(first, min(first + MAX_NGRAM, length)):
            if last > first and word_starts[last] != IN_WORD:
                break
            hashed = (hashed * _MULTIPLIER + input_ids[last]) % _MODULUS
            order = last - first + 1
            for family, (needs_start, needs_end) in enumerate(_EDGES):
                if (at_start or not needs_start) and (at_end[last] or not needs_end) and order + needs_start + needs_end <= MAX_NGRAM:
                    found.append(((hashed + _FAMILY_OFFSETS[order][family]) % NGRAM_BUCKETS, first, last))
    return found
