"""Macro-F1 and accuracy on CAIS's test split: class weights balanced vs none, early stopping on vs off.

    .venv/bin/python benchmarks/train_quality.py [--epochs 12] [--runs 1]

Trains the small random-weight BERT the tests use (`pretrained: false`, tiny) on CAIS's train split
(real Chinese smart-speaker requests, 14 intents, 86 % of them PlayMusic). The data is read from
../shared/datasets/cais next to this repository, or from $CAIS_DIR; without it the script says so
and exits. Every configuration trains on the same examples with the same seed, one after the other in
this process, and the table reports medians over --runs seeds.
"""

import argparse
import csv
import logging
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bert_intent import settings  # noqa: E402
from bert_intent.reports import scores  # noqa: E402
from bert_intent.training import fine_tune  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cais"
# Sing has 3 training examples: holding one out per intent needs a third of the data for validation.
BASE = {"pretrained": False, "scratch_size": "tiny", "batch_size": 32, "learning_rate": 2e-3,
        "validation_split": 0.34, "device": "cpu"}
CONFIGURATIONS = {
    "balanced, early stopping": {"class_weights": "balanced", "early_stopping_patience": 2},
    "none, early stopping": {"class_weights": "none", "early_stopping_patience": 2},
    "balanced, no early stopping": {"class_weights": "balanced", "early_stopping_patience": 0},
    "none, no early stopping": {"class_weights": "none", "early_stopping_patience": 0},
}


def read_split(directory: Path, name: str) -> Tuple[List[str], List[str]]:
    with (directory / f"{name}.csv").open(encoding="utf-8", newline="") as file:
        rows = [(row["text"].strip(), row["label"].strip()) for row in csv.DictReader(file)]
    rows = [(text, label) for text, label in rows if text and label]
    return [text for text, _ in rows], [label for _, label in rows]


def evaluate(config: Dict[str, object], train: Tuple[List[str], List[str]], test: Tuple[List[str], List[str]]) -> Dict[str, float]:
    started = time.perf_counter()
    model = fine_tune(*train, settings.validate(config))
    seconds = time.perf_counter() - started
    predicted = model.confidences(test[0]).argmax(axis=1)
    index = {label: position for position, label in enumerate(model.labels)}
    known = [position for position, label in enumerate(test[1]) if label in index]  # GetDate is test-only
    result = scores([index[test[1][position]] for position in known], [predicted[position] for position in known])
    return {**result, "epochs": model.summary["epochs_run"], "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--runs", type=int, default=1, help="seeds per configuration; medians are reported")
    arguments = parser.parse_args()
    data = Path(os.environ.get("CAIS_DIR", DEFAULT_DATA))
    if not (data / "train.csv").is_file():
        print(f"CAIS not found in {data}: skipping (set CAIS_DIR to its directory).")
        return
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("TQDM_DISABLE", "1")
    train, test = read_split(data, "train"), read_split(data, "test")
    print(f"CAIS: {len(train[0])} training and {len(test[0])} test examples; tiny BERT from scratch, "
          f"up to {arguments.epochs} epochs, {arguments.runs} seed(s).\n")
    print(f"{'class_weights, early stopping':<30} {'macro-F1':>8} {'accuracy':>8} {'epochs':>6} {'seconds':>7}")
    for name, overrides in CONFIGURATIONS.items():
        runs = [
            evaluate({**BASE, **overrides, "epochs": arguments.epochs, "random_seed": seed}, train, test)
            for seed in range(42, 42 + arguments.runs)
        ]
        median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        print(f"{name:<30} {median['macro_f1']:>8.3f} {median['accuracy']:>8.3f} {median['epochs']:>6.0f} "
              f"{median['seconds']:>7.0f}", flush=True)


if __name__ == "__main__":
    main()
