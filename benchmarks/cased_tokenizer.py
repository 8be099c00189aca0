"""Capital letters under bert-base-chinese's published tokenizer, and the lower-casing that reads them.

    .venv/bin/python benchmarks/cased_tokenizer.py [--seeds 3]

bert-base-chinese's tokenizer_config.json says `do_lower_case: false`, but its vocabulary was built
lower-cased (4 of the 26 capital letters are tokens), so every word with a capital letter (MU5101,
G102, IMAX, Taylor Swift) reads as [UNK]. `checkpoints.load_pretrained` lower-cases Latin letters for
such a tokenizer. The stand-in has the same vocabulary but lower-cases already; this script copies it
with the published tokenizer configuration, counts the test messages of the example bot and of CAIS
with a capital letter and how many of them read [UNK] under each tokenizer, then trains the component
on the example bot (Rasa-free `fine_tune`, only `model_name` set, entity annotations included) twice
per seed: with the tokenizer as published (case kept) and as it is loaded now (lower-cased). It reads
the intent accuracy of each part and the served entity span F1 on all test messages and on those with
a capital letter; medians over seeds.
"""

import argparse
import csv
import json
import logging
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from few_shot import PROXY, REPOSITORY, SHARED  # noqa: E402

CAPITAL = re.compile(r"[A-Z]")
Examples = Tuple[List[str], List[str], List[List[Dict[str, Any]]]]


def published_copy(directory: Path) -> Path:
    """The stand-in with bert-base-chinese's published tokenizer configuration (case kept)."""
    shutil.copytree(PROXY, directory)
    configuration = json.loads((directory / "tokenizer_config.json").read_text(encoding="utf-8"))
    (directory / "tokenizer_config.json").write_text(json.dumps({**configuration, "do_lower_case": False}), encoding="utf-8")
    tokenizer = json.loads((directory / "tokenizer.json").read_text(encoding="utf-8"))
    tokenizer["normalizer"]["lowercase"] = False
    (directory / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False), encoding="utf-8")
    return directory


def unknown_share(tokenizer: Any, texts: Sequence[str]) -> str:
    """How many of `texts` have a token the tokenizer reads as [UNK]."""
    unknown = sum(tokenizer.unk_token in tokenizer.tokenize(text) for text in texts)
    return f"{unknown} of {len(texts)}"


def subset(examples: Examples, keep: Sequence[bool]) -> Examples:
    return tuple([value for value, kept in zip(column, keep) if kept] for column in examples)  # type: ignore[return-value]


def scores(model: Any, test: Examples) -> Dict[str, float]:
    from bert_intent import parts

    intents = parts.evaluate(model, test[0], test[1])
    found = parts.evaluate_entities(model, test[0], test[2])
    return {"encoder": intents["encoder"], "ngrams": intents["ngrams"], "served": intents["served"],
            "entity_f1": found["served_entity_f1"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    arguments = parser.parse_args()
    if not (PROXY / "config.json").is_file():
        print(f"The proxy checkpoint is not in {PROXY}: skipping (set SHARED_DIR to the shared folder).")
        return
    logging.basicConfig(level=logging.WARNING)
    from transformers import AutoTokenizer

    from bert_intent import checkpoints, parts, settings
    from bert_intent.training import fine_tune

    with tempfile.TemporaryDirectory(prefix="cased-tokenizer-") as scratch:
        checkpoint = published_copy(Path(scratch) / "published")
        as_published = AutoTokenizer.from_pretrained(checkpoint)
        loaded, _ = checkpoints.load_pretrained(str(checkpoint), ["a", "b"], 0)
        train = parts.read_annotated_nlu(REPOSITORY / "example_bot" / "data" / "nlu.yml")
        test = parts.read_annotated_nlu(REPOSITORY / "example_bot" / "tests" / "nlu_test.yml")
        with (SHARED / "datasets" / "cais" / "test.csv").open(encoding="utf-8", newline="") as file:
            cais = [row["text"] for row in csv.DictReader(file)]
        for name, texts in (("example bot", test[0]), ("CAIS", cais)):
            capitals = [text for text in texts if CAPITAL.search(text)]
            print(f"{name} test messages: {len(capitals)} of {len(texts)} with a capital letter; with an [UNK] token: "
                  f"as published {unknown_share(as_published, capitals)}, as loaded {unknown_share(loaded, capitals)}")
        with_capitals = subset(test, [bool(CAPITAL.search(text)) for text in test[0]])

        keeps_case = checkpoints._reads_capitals_only_in_lower_case
        results: Dict[str, List[Dict[str, float]]] = {}
        for system in ("as published", "lower-cased"):
            checkpoints._reads_capitals_only_in_lower_case = keeps_case if system == "lower-cased" else lambda tokenizer: False
            for seed in range(1, arguments.seeds + 1):
                model = fine_tune(train[0], train[1], settings.validate({"model_name": str(checkpoint), "random_seed": seed}),
                                  annotations=train[2])
                row = {**scores(model, test), **{f"{key} (capitals)": value for key, value in scores(model, with_capitals).items()}}
                results.setdefault(system, []).append(row)
                print(f"{system} seed {seed}: " + ", ".join(f"{key} {value:.3f}" for key, value in row.items()), flush=True)
        checkpoints._reads_capitals_only_in_lower_case = keeps_case

    print(f"\nexample bot, medians over {arguments.seeds} seeds ({len(with_capitals[0])} test messages with a capital letter):")
    keys = list(results["lower-cased"][0])
    print("| tokenizer | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for system, rows in results.items():
        print(f"| {system} | " + " | ".join(f"{statistics.median(row[key] for row in rows):.3f}" for key in keys) + " |")


if __name__ == "__main__":
    main()
