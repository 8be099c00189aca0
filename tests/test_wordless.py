"""Messages without a word: which ones a bot reads."""

import numpy as np

from bert_intent.wordless import has_word, says_something, taught_marks


def test_letters_of_any_script_and_digits_are_words_marks_are_not() -> None:
    assert [has_word(text) for text in ("放首歌", "ok", "12", "Ωμέγα", "？？？", "😂", "。。。", "~～…", " \u3000", "")] == [
        True, True, True, True, False, False, False, False, False, False,
    ]


def test_the_marks_taught_are_those_of_examples_without_a_word() -> None:
    assert taught_marks(["放首歌？", "👍", "好的！", "👍 👍", "？！"]) == "".join(sorted("👍？！"))
    assert taught_marks(["放首歌？", "好的"]) == ""


def test_a_message_without_a_word_is_read_only_when_every_mark_was_taught() -> None:
    texts = ["放首歌？", "？？？", "😂", "👍", "👍👍 ", "👍？", "   ", ""]
    np.testing.assert_array_equal(says_something(texts, ""), [True] + [False] * 7)
    np.testing.assert_array_equal(says_something(texts, "👍"), [True, False, False, True, True, False, False, False])
