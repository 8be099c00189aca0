"""Examples as the network reads them: the tokenizer call, each example's tags, and the padded batch."""

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
    examples = encoding.examples(tokenizer, texts, intents, [0, 1], annotations, types, max_length=16)
    begin, inside = entities.begin_tag(0), entities.begin_tag(0) + 1
    ignored, outside = entities.IGNORED, entities.OUTSIDE
    assert [example["labels"] for example in examples] == [0, 1]
    assert examples[0]["entity_tags"] == [ignored, outside, begin, inside, ignored]  # [CLS] 去 上 海 [SEP]
    batch = PadWithTags(tokenizer, return_tensors="pt")(examples)
    assert batch["input_ids"].shape == batch["entity_tags"].shape == (2, 6)
    assert batch["entity_tags"][0, -1] == ignored and batch["attention_mask"][0, -1] == 0


def test_the_tokenizer_call_truncates_and_gives_character_offsets() -> None:
    tokenizer, _ = build_from_scratch(["明天会下雨吗"], ["a"], "tiny", 16)
    encoded = encoding.tokenize(tokenizer, ["明天会下雨吗" * 10], max_length=8)
    assert len(encoded["input_ids"][0]) == 8
    assert encoded["offset_mapping"][0][1:3] == [(0, 1), (1, 2)]


def test_entities_are_not_learned_when_switched_off() -> None:
    annotations = [[{"start": 0, "end": 2, "value": "上海", "entity": "city"}]]
    assert encoding.entity_types_to_learn(annotations, entity_recognition=False, intent_classification=True) == []


def test_batches_by_length_hold_every_text_once_shortest_first() -> None:
    texts = ["四个字啊", "一", "三个字", "两字", "五个字的话"]
    assert encoding.batches_by_length(texts, 2) == [[1, 3], [2, 0], [4]]
    assert encoding.batches_by_length([], 2) == []


def test_each_token_says_whether_it_starts_a_word_by_jiebas_segmentation() -> None:
    tokenizer, _ = build_from_scratch(["我想听周杰伦的稻香 play it"], ["a"], "tiny", 32)
    encoded = encoding.tokenize(tokenizer, ["我想听周杰伦的稻香 play it", "好"], max_length=32, padding=True)
    start, inside, none = hashing.WORD_START, hashing.IN_WORD, hashing.NO_WORD
    # [CLS] 我 想 听 周 杰 伦 的 稻 香 p ##l ##a ##y i ##t [SEP]: jieba's words 我 想 听 周杰伦 的 稻香 play it
    words = [start, start, start, start, inside, inside, start, start, inside]
    pieces = [start, inside, inside, inside, start, inside]
    assert encoded[encoding.WORD_STARTS][0] == [none, *words, *pieces, none]
    assert encoded[encoding.WORD_STARTS][1] == [none, start, none] + [none] * 14  # padding is in no word
    assert "offset_mapping" in encoded and "offset_mapping" not in encoding.tokenize(tokenizer, ["好"], 8, offsets=False)
