"""Messages without a word: nothing but punctuation, symbols (emoji) and spaces, like ？？？ or 😂.

Such a message says nothing a bot's examples taught it, so it reads as "none of them", whatever the
vocabulary makes of its marks. Only the marks a bot's own wordless examples use (say 👍 under `affirm`)
are read like words."""

import unicodedata
from typing import Container, Iterable, Sequence

import numpy as np


def has_word(text: str) -> bool:
    """Whether `text` has a letter (of any script, Chinese characters included) or a digit."""
    return any(unicodedata.category(character)[0] in "LN" for character in text)


def taught_marks(texts: Iterable[str]) -> str:
    """The marks (characters other than spaces) of the training examples without a word, sorted."""
    return "".join(sorted({mark for text in texts if not has_word(text) for mark in text if not mark.isspace()}))


def says_something(texts: Sequence[str], taught: Container[str]) -> np.ndarray:
    """Per text: whether it has a word, or marks only of the `taught` ones (and at least one)."""

    def read(text: str) -> bool:
        if has_word(text):  # nearly every message: stops at its first letter
            return True
        marks = [mark for mark in text if not mark.isspace()]
        return bool(marks) and all(mark in taught for mark in marks)

    return np.array([read(text) for text in texts], dtype=bool)
