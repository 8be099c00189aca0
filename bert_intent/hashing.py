"""Hashed n-grams of token ids, the lexical features of the closed-form heads (`heads.py`).

Everything is tensor arithmetic on `input_ids` (and on where words start, `encoding.word_starts`), so it
exports to the network's ONNX graph: a rolling hash of token ids, kept below `_MODULUS` at every step so
int64 never overflows (in torch and ONNX).
"""

from typing import Iterator, Tuple

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


def word_ngram_buckets(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, word_starts: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Hashed buckets of the token n-grams inside each word, as Rasa's `char_wb` reads a word padded with
    spaces: the n-grams within it (1 to MAX_NGRAM tokens), those that begin at its start or end at its
    end with the space counted (up to MAX_NGRAM - 1 tokens), and the whole word between both (up to
    MAX_NGRAM - 2 tokens); each edge a hash family of its own. Whether each lies inside the message (1)
    or not (0); both (batch, n-grams)."""
    word = ((word_starts != NO_WORD) * attention_mask).to(input_ids.dtype)
    starts = (word_starts != IN_WORD).to(input_ids.dtype)
    follows = torch.cat([starts[:, 1:], torch.ones_like(starts[:, :1])], dim=1)  # the next token starts a word
    buckets, present = [], []
    within = torch.ones_like(input_ids)  # no word starts after the n-gram's first token
    for order, hashes, mask in _rolling_ngrams(input_ids, word):
        if order > 1:
            within = within[:, :-1] * (1 - starts[:, order - 1 :])
        for family, (at_start, at_end) in enumerate(_EDGES):
            if order + at_start + at_end > MAX_NGRAM:
                continue
            edges = (starts[:, : hashes.shape[1]] if at_start else 1) * (follows[:, order - 1 :] if at_end else 1)
            buckets.append((hashes + _WORD_FAMILY_OFFSET + (4 * family + order) * _ORDER_OFFSET) % NGRAM_BUCKETS)
            present.append(mask * within * edges)
    return torch.cat(buckets, dim=1), torch.cat(present, dim=1)
