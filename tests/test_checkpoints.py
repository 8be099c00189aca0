"""Loading a pretrained checkpoint: its tokenizer as the encoder knows it, saved without false alarms."""

import json
import shutil
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from bert_intent.checkpoints import load_pretrained


def test_a_vocabulary_with_a_duplicate_token_loads_tokenizes_as_published_and_saves_quietly(
    tiny_bert: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(tiny_bert, checkpoint)
    tokenizer_file = checkpoint / "tokenizer.json"
    published = json.loads(tokenizer_file.read_text(encoding="utf-8"))
    vocabulary = published["model"]["vocab"]
    skipped = vocabulary.pop("订")  # as a vocab.txt listing a token twice leaves its first id without one
    tokenizer_file.write_text(json.dumps(published, ensure_ascii=False), encoding="utf-8")
    texts = ["帮我订明天去上海的机票", "播放 Taylor Swift 的歌", f"[unused-duplicate-{skipped}]", "天气"]
    as_published = AutoTokenizer.from_pretrained(checkpoint)(texts)["input_ids"]

    tokenizer, _ = load_pretrained(str(checkpoint), ["a", "b"], 0)
    capfd.readouterr()
    tokenizer.save_pretrained(tmp_path / "saved")

    assert "could be corrupted" not in "".join(capfd.readouterr())
    ids = tokenizer.get_vocab()
    assert sorted(ids.values()) == list(range(len(ids)))
    assert ids[f"[unused-duplicate-{skipped}]"] == skipped
    assert tokenizer(texts)["input_ids"] == as_published
    assert skipped not in sum(as_published, [])
