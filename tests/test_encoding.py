"""Examples as the network reads them: the tokenizer call, each example's tags, and the padded batch."""

import numpy as np

from bert_intent import encoding, entities, hashing
from bert_intent.checkpoints import build_from_scratch
from bert_intent.encoding import PadWithTags
from bert_intent.entities import EntityType


def test_examples_carry_the_intent_and_each_tokens_tag_and_pad_to_a_batch() -> None:
    texts, intents = ["去上海", "你好啊呀"], ["book", "greet"]
    tokenizer, _ = build_from_scratch(texts, ["book", "greet"], "tiny", 16)
    annotations = [[{"start": 1, "end": 3, "value": "上海", "entity": "city"}], []]
    types = encoding.entity_types_to_learn(annotations, entity_recognition=True, intent_classification=True)
    assert types == [EntityType("city")]
    examples, whole_words = encoding.examples(tokenizer, texts, intents, [0, 1], annotations, types, max_length=16)
    begin, inside = entities.begin_tag(0), entities.begin_tag(0) + 1
    ignored, outside = entities.IGNORED, entities.OUTSIDE
    assert [example["labels"] for example in examples] == [0, 1] and whole_words
    assert examples[0]["entity_tags"] == [ignored, outside, begin, inside, ignored]  # [CLS] 去 上 海 [SEP]
    batch = PadWithTags(tokenizer, return_tensors="pt")(examples)
    assert batch["input_ids"].shape == batch["entity_tags"].shape == (2, 6)
    assert batch["entity_tags"][0, -1] == ignored and batch["attention_mask"][0, -1] == 0


def test_the_tokenizer_call_truncates_and_gives_character_offsets() -> None:
    tokenizer, _ = build_from_scratch(["明天会下雨吗"], ["a"], "tiny", 16)
    encoded = encoding.tokenize(tokenizer, ["明天会下雨吗" * 10], max_length=8)
    assert len(encoded["input_ids"][0]) == 8
    assert encoded["offset_mapping"][0][1:3] == [(0, 1), (1, 2)]


def test_a_text_is_cut_short_where_the_window_is_full_and_more_than_spaces_follow() -> None:
    tokenizer, _ = build_from_scratch(["明天会下雨吗"], ["a"], "tiny", 16)
    for text, cut_short in (("明天会下雨吗" * 2, True), ("明天会下雨" + "   ", False), ("明天会下雨", False), ("明天", False)):
        offsets = encoding.tokenize(tokenizer, [text], max_length=7)["offset_mapping"][0]
        assert encoding.cut_short(text, offsets, tokens_at_most=7 - tokenizer.num_special_tokens_to_add()) is cut_short, text


def test_entities_are_not_learned_when_switched_off() -> None:
    annotations = [[{"start": 0, "end": 2, "value": "上海", "entity": "city"}]]
    assert encoding.entity_types_to_learn(annotations, entity_recognition=False, intent_classification=True) == []


def test_batches_by_length_hold_every_text_once_shortest_first() -> None:
    texts = ["四个字啊", "一", "三个字", "两字", "五个字的话"]
    assert encoding.batches_by_length(texts, 2) == [[1, 3], [2, 0], [4]]
    assert encoding.batches_by_length([], 2) == []


def test_each_token_says_whether_it_starts_a_word_by_jiebas_segmentation() -> None:
    start, inside, none = hashing.WORD_START, hashing.IN_WORD, hashing.NO_WORD
    # [CLS] 我 想 听 周 杰 伦 的 稻 香 p ##l ##a ##y i ##t [SEP]: jieba's words 我 想 听 周杰伦 的 稻香 play it
    offsets = [(0, 0), *((n, n + 1) for n in range(9)), (10, 11), (11, 12), (12, 13), (13, 14), (15, 16), (16, 17), (0, 0)]
    words = [start, start, start, start, inside, inside, start, start, inside]
    pieces = [start, inside, inside, inside, start, inside]
    assert encoding.word_starts("我想听周杰伦的稻香 play it", offsets) == [none, *words, *pieces, none]


def test_the_word_ngrams_are_padded_with_the_batch_and_read_per_part() -> None:
    tokenizer, _ = build_from_scratch(["周杰伦的稻香"], ["a"], "tiny", 32)
    encoded = encoding.tokenize(tokenizer, ["周杰伦的稻香", "好"], max_length=32, padding=True)
    buckets, present, spans = (encoded[name] for name in (encoding.WORD_NGRAMS, encoding.WORD_NGRAM_PRESENT, encoding.WORD_NGRAM_SPANS))
    # 周杰伦: 6 within, 3 + 3 at an edge (the whole word with both spaces is 5 long); 的 and 好: 4 each; 稻香: 8
    assert buckets.shape == present.shape == spans.shape[:2] == (2, 12 + 4 + 8) and present[0].sum() == 24
    assert present[1].tolist() == [1] * 4 + [0] * 20 and not buckets[1][4:].any()  # padding is absent
    assert "offset_mapping" in encoded and encoding.WORD_NGRAM_SPANS in encoded
    alone = encoding.tokenize(tokenizer, ["好"], 8, offsets=False)
    assert "offset_mapping" not in alone and encoding.WORD_NGRAM_SPANS not in alone and alone[encoding.WORD_NGRAM_PRESENT] == [[1] * 4]
    # Parts: the whole message, then [CLS] 周 杰 伦 (before a cut at 的), then 的 稻 香 [SEP].
    part_mask = np.array([[[1] * 8, [1] * 4 + [0] * 4, [0] * 4 + [1] * 4]])
    in_parts = encoding.word_ngrams_in_parts(spans[:1], present[:1], part_mask)
    assert in_parts.shape == (1, 3, 24) and in_parts[0, 0].tolist() == present[0].tolist()
    assert in_parts[0, 1].sum() == 12 and in_parts[0, 2].sum() == 4 + 8  # no word spans the cut
    empty = encoding.tokenize(tokenizer, ["", "!"], 8, padding=True)
    assert empty[encoding.WORD_NGRAM_PRESENT].shape[1] >= 1 and not empty[encoding.WORD_NGRAM_PRESENT][0].any()
