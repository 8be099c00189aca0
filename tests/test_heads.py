"""The network's parts alone: hashing, each closed-form head's `fit`, and the ONNX file's values of every
parameter matched back to the torch network (what the torch backend and --finetune load)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel

from bert_intent import entities, onnx_network, training
from bert_intent.checkpoints import build_from_scratch
from bert_intent.encoding import PadWithTags, tokenize
from bert_intent.hashing import (
    IN_WORD, NGRAM_BUCKETS, NO_WORD, TAG_NGRAM_BUCKETS, TAG_WINDOWS, WORD_START, ngram_buckets, tag_ngram_buckets, word_ngrams,
)
from bert_intent.heads import Centroids, Familiarity, NgramHead, TagNgramHead
from bert_intent.network import IntentNetwork


def test_ngram_buckets_mark_padding_and_ignore_it() -> None:
    ids = torch.tensor([[2, 11, 12, 13, 3, 0, 0], [2, 11, 12, 13, 3, 5, 3]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1, 1]])
    buckets, present = ngram_buckets(ids, mask)
    assert buckets.shape == present.shape and int(buckets.max()) < NGRAM_BUCKETS and int(buckets.min()) >= 0
    first = set(buckets[0][present[0].bool()].tolist())
    assert int(present[0].sum()) == 5 + 4 + 3 + 2  # the 1- to 4-grams of five tokens
    assert first < set(buckets[1][present[1].bool()].tolist())  # the same n-grams where the messages agree
    alone, alone_present = ngram_buckets(ids[:1, :5], mask[:1, :5])
    assert set(alone[0][alone_present[0].bool()].tolist()) == first  # padding adds nothing


def test_word_ngrams_stay_inside_words_and_mark_their_edges_as_char_wb_does() -> None:
    ids = [2, 11, 12, 13, 3, 0]  # [CLS] a b c [SEP] padding, words "ab" and "c"
    found = word_ngrams(ids, [NO_WORD, WORD_START, IN_WORD, WORD_START, NO_WORD, NO_WORD])
    # " ab " gives a, b, ab inside, " a", " ab" at the start, "b ", "ab " at the end, " ab " whole: 8;
    # " c " gives c, " c", "c ", " c ": 4. Nothing spans "b c", and [CLS], [SEP] and padding are no word.
    assert len(found) == 8 + 4 and all(0 <= bucket < NGRAM_BUCKETS for bucket, _, _ in found)
    assert {(first, last) for _, first, last in found} == {(1, 1), (2, 2), (1, 2), (3, 3)}
    in_other_words = {bucket for bucket, _, _ in word_ngrams([2, 12, 11, 3], [NO_WORD, WORD_START, WORD_START, NO_WORD])}
    assert len(in_other_words) == 4 + 4  # "b" and "a" as words of their own
    # Shared with "ab": a and b inside a word, " a" at a start, "b " at an end.
    assert len({bucket for bucket, _, _ in found} & in_other_words) == 4
    message, _ = ngram_buckets(torch.tensor([ids]), torch.tensor([[1, 1, 1, 1, 1, 0]]))
    assert not set(message[0].tolist()) & {bucket for bucket, _, _ in found}  # a hash family of their own


def test_tag_buckets_do_not_depend_on_the_padding_id() -> None:
    ids = torch.tensor([[2, 11, 12, 3]])
    padded_with_7 = torch.tensor([[2, 11, 12, 3, 7, 7]])
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    alone = tag_ngram_buckets(ids, torch.ones_like(ids))
    padded = tag_ngram_buckets(padded_with_7, mask)
    assert alone.shape == (1, 4, len(TAG_WINDOWS)) and int(padded.max()) < TAG_NGRAM_BUCKETS
    assert torch.equal(padded[:, :4], alone)


def toy_batch() -> tuple:
    """Two intents told apart by their middle token: 11 (intent 0) or 21 (intent 1)."""
    ids = torch.tensor([[2, 10, 11, 3], [2, 11, 12, 3], [2, 20, 21, 3], [2, 21, 22, 3]])
    return ids, torch.ones_like(ids), [0, 0, 1, 1]


def test_the_ngram_head_fits_its_examples_and_weighs_unseen_ngrams_nothing() -> None:
    ids, mask, labels = toy_batch()
    head = NgramHead(num_labels=2)
    buckets, present = ngram_buckets(ids, mask)
    head.fit(buckets, present, labels, balanced=True)
    assert head(buckets, present).argmax(dim=-1).tolist() == labels
    unseen, unseen_present = ngram_buckets(torch.tensor([[40, 41, 42]]), torch.ones(1, 3, dtype=torch.long))
    assert float(head.idf[unseen[0]].abs().sum()) == 0.0
    assert torch.allclose(head(unseen, unseen_present)[0], head.bias)  # only the intercept is left


def test_familiarity_is_the_share_of_ngrams_seen_with_each_intent() -> None:
    ids, mask, labels = toy_batch()
    buckets, present = ngram_buckets(ids, mask)
    unknown = 12  # as if token 12 were the tokenizer's unknown token
    _, readable = ngram_buckets(ids, mask * (ids != unknown))
    familiarity = Familiarity(num_labels=2)
    familiarity.fit(buckets, readable, labels)
    scores = familiarity(buckets, present)
    assert scores[0, 0] == 1.0 and scores[2, 1] == 1.0
    assert scores[0, 1] < 0.5 and scores[1, 0] < 1.0  # n-grams with the unknown token are never "seen"


def test_the_tag_ngram_head_learns_tags_and_keeps_unseen_tags_impossible() -> None:
    ids = torch.tensor([[2, 30, 31, 10, 3], [2, 10, 30, 31, 3]])
    mask = torch.ones_like(ids)
    tags = torch.tensor([[-100, 1, 2, 0, -100], [-100, 0, 1, 2, -100]])
    head = TagNgramHead(num_tags=5)
    head.fit(ids, mask, tags, ignored=-100)
    predicted = head(ids, mask).argmax(dim=-1)
    assert predicted[:, 1:-1].tolist() == [[1, 2, 0], [0, 1, 2]]
    assert float(head.bias[3]) == -30.0 and float(head.bias[4]) == -30.0


def test_centroids_are_normalised_means_and_give_cosines() -> None:
    centroids = Centroids(num_labels=2, hidden_size=2)
    centroids.fit(torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]]), [0, 0, 1])
    assert torch.allclose(centroids.centroids.norm(dim=-1), torch.ones(2))
    assert torch.allclose(centroids(torch.tensor([[0.0, 1.0]])), torch.tensor([[0.8 / (1.6**2 + 0.8**2) ** 0.5, 1.0]]))


@pytest.fixture(scope="module")
def fitted_network() -> tuple:
    torch.manual_seed(0)
    tokenizer, network = build_from_scratch(["订机票", "天气怎么样", "放首歌"], ["a", "b", "c"], "tiny", 16, num_tags=3)
    with torch.no_grad():
        network.ngrams.weights.normal_()
        network.ngrams.idf.uniform_(0, 5)
        network.familiarity.seen.bernoulli_(0.05)
        network.tag_ngrams.weights.normal_()
        network.centroids.centroids.normal_()
    return tokenizer, network.eval()


@pytest.mark.parametrize("quantize", [False, True])
def test_every_parameter_is_found_again_in_the_onnx_file(fitted_network: tuple, quantize: bool, tmp_path: Path) -> None:
    tokenizer, network = fitted_network
    path = tmp_path / "model.onnx"
    locations = onnx_network.export(network, tokenizer.model_input_names, path, quantize)
    weights = onnx_network.torch_weights(path, locations)
    assert set(weights) == set(dict(network.named_parameters()))
    for name, parameter in network.named_parameters():
        scale = float(parameter.detach().abs().max()) / 127 if quantize else 1e-6
        assert torch.allclose(weights[name], parameter, atol=scale + 1e-6), name


def test_the_onnx_session_computes_int8_products_exactly_on_every_cpu(fitted_network: tuple, tmp_path: Path) -> None:
    tokenizer, network = fitted_network
    path = tmp_path / "model.onnx"
    onnx_network.export(network, tokenizer.model_input_names, path, quantize=True)
    options = onnx_network.session(path, threads=1).get_session_options()
    assert options.get_session_config_entry(onnx_network.EXACT_INT8_PRODUCT) == "1"


@pytest.mark.skipif(not (torch.cuda.is_available() or torch.backends.mps.is_available()), reason="needs a GPU")
def test_the_closed_form_fit_works_with_the_network_on_a_gpu(fitted_network: tuple) -> None:
    tokenizer, network = fitted_network
    device = "cuda" if torch.cuda.is_available() else "mps"
    texts = ["订机票", "天气怎么样", "放首歌"]
    examples = [
        {**{key: values[index] for key, values in tokenize(tokenizer, texts, 16, offsets=False).items()},
         "labels": index, "entity_tags": [entities.IGNORED] + [entities.OUTSIDE] * len(text) + [entities.IGNORED]}
        for index, text in enumerate(texts)
    ]
    training._fit_closed_form_heads(network.to(device), tokenizer, examples, balanced=True)
    batch = PadWithTags(tokenizer, return_tensors="pt")(examples)
    with torch.no_grad():
        output = network(batch["input_ids"], batch["attention_mask"])
    assert output.ngram_log_probs.argmax(dim=-1).tolist() == [0, 1, 2]
    assert np.isfinite(output.confidences.numpy()).all()
