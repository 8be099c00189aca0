"""Loading a pretrained checkpoint: its tokenizer as the encoder knows it, saved without false alarms."""

import json
import shutil
import string
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


def test_a_case_keeping_tokenizer_over_an_uncased_vocabulary_reads_capitals_lower_cased(
    tiny_bert: Path, tmp_path: Path
) -> None:
    """bert-base-chinese's published tokenizer keeps case, but its vocabulary has almost no capital
    letters: without lower-casing, MU5101 and G102 would both read as [UNK]. The lower-casing is saved
    with the tokenizer, so the trained model reads messages as training did."""
    checkpoint = case_keeping_copy(tiny_bert, tmp_path / "checkpoint", string.ascii_lowercase + string.digits)
    as_published = AutoTokenizer.from_pretrained(checkpoint)
    assert as_published.tokenize("MU5101") == as_published.tokenize("G102") == [as_published.unk_token]

    tokenizer, _ = load_pretrained(str(checkpoint), ["a", "b"], 0)
    tokenizer.save_pretrained(tmp_path / "saved")
    saved = AutoTokenizer.from_pretrained(tmp_path / "saved", local_files_only=True)

    for reader in (tokenizer, saved):
        assert reader.tokenize("订MU5101航班") == reader.tokenize("订mu5101航班")
        assert reader.unk_token not in reader.tokenize("MU5101 G102")
        assert reader("订MU5101航班", return_offsets_mapping=True)["offset_mapping"][2] == (1, 2)  # "M" of "MU5101"


def test_a_tokenizer_that_reads_capitals_keeps_them(tiny_bert: Path, tmp_path: Path) -> None:
    checkpoint = case_keeping_copy(tiny_bert, tmp_path / "checkpoint", string.ascii_letters)

    tokenizer, _ = load_pretrained(str(checkpoint), ["a", "b"], 0)

    assert tokenizer.tokenize("MU") == ["M", "##U"]


def case_keeping_copy(checkpoint: Path, copy: Path, characters: str) -> Path:
    """`checkpoint` with `characters` (alone and as continuations) added to its vocabulary and a tokenizer
    configured to keep case, as bert-base-chinese publishes its own."""
    shutil.copytree(checkpoint, copy)
    published = json.loads((copy / "tokenizer.json").read_text(encoding="utf-8"))
    vocabulary = published["model"]["vocab"]
    for token in [*characters, *("##" + character for character in characters)]:
        vocabulary.setdefault(token, len(vocabulary))
    published["normalizer"]["lowercase"] = False
    (copy / "tokenizer.json").write_text(json.dumps(published, ensure_ascii=False), encoding="utf-8")
    configuration = json.loads((copy / "tokenizer_config.json").read_text(encoding="utf-8"))
    (copy / "tokenizer_config.json").write_text(json.dumps({**configuration, "do_lower_case": False}), encoding="utf-8")
    return copy
