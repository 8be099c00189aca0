"""Screening the n-gram head's features: its own n-grams, beside the n-grams inside words, and why.

    .venv/bin/python benchmarks/word_bounded_ngrams.py [--datasets bot cais] [--k 5 10 20 100 all] [--draws 3]

Rasa's DIET pipeline reads character n-grams inside jieba's words (JiebaTokenizer + CountVectorsFeaturizer
`char_wb`). Since session 36 the n-gram head reads those beside its n-grams across the whole message.
This script compares feature sets with the head's classifier (scikit-learn's multinomial logistic
regression, C = 10, balanced class weights, on TF-IDF features of unit length), on `few_shot.py`'s draws
and test messages (single intents only; Rasa-free, seconds per draw):

- `before`: character 1- to 4-grams of the lower-cased message between a start and an end marker, as the
  head hashes BERT's tokens between [CLS] and [SEP] (for Chinese, characters; an emulation, not the head);
- `with words`: those, and the n-grams of each jieba word padded with spaces, as `char_wb` makes them,
  leaving out the n-grams of spaces alone (the head since session 36, `hashing.word_ngrams`);
- `with words and spaces`: also `char_wb`'s n-grams of spaces alone, two per word: a count of the
  message's words, which TF-IDF weighs like any n-gram (the union first screened);
- `before + word count`: `before` and only that count.

Medians over draws, then each draw. Nothing here is served: it screens the head's features.
"""

import argparse
import logging
import statistics
import sys
from pathlib import Path
from typing import Callable, Dict, List, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from few_shot import DATASETS, SHARED, draw  # noqa: E402

NGRAM_C = 10.0  # heads.NGRAM_C
MAX_NGRAM = 4  # hashing.MAX_NGRAM


def feature_sets() -> Dict[str, Callable[[str], List[str]]]:
    """Each system's analyzer: the features of a message."""
    import jieba

    jieba.setLogLevel(logging.WARNING)

    def grams(text: str) -> List[str]:
        return [text[start : start + size] for size in range(1, MAX_NGRAM + 1) for start in range(len(text) - size + 1)]

    def before(text: str) -> List[str]:
        return ["message:" + gram for gram in grams(f"^{text.lower()}$")]

    def words(text: str, spaces: bool) -> List[str]:
        return ["word:" + gram for word in jieba.lcut(text.lower()) if word.strip()
                for gram in grams(f" {word} ") if spaces or gram.strip()]

    return {
        "before": before,
        "with words": lambda text: before(text) + words(text, spaces=False),
        "with words and spaces": lambda text: before(text) + words(text, spaces=True),
        "before + word count": lambda text: before(text) + [gram for gram in words(text, spaces=True) if not gram[5:].strip()],
    }


def accuracy(analyzer: Callable[[str], List[str]], train: Sequence[tuple], test: Sequence[tuple]) -> float:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts, intents = zip(*train)
    model = make_pipeline(TfidfVectorizer(analyzer=analyzer), LogisticRegression(C=NGRAM_C, class_weight="balanced", max_iter=3000))
    model.fit(list(texts), list(intents))
    test_texts, test_intents = zip(*test)
    return float(np.mean(model.predict(list(test_texts)) == np.array(test_intents)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["bot", "cais"], choices=list(DATASETS))
    parser.add_argument("--k", nargs="+", default=["5", "10", "20", "100", "all"])
    parser.add_argument("--draws", type=int, default=3)
    arguments = parser.parse_args()
    if "cais" in arguments.datasets and not (SHARED / "datasets" / "cais" / "train.csv").is_file():
        print(f"CAIS is not in {SHARED / 'datasets' / 'cais'}: skipping (set SHARED_DIR to the shared folder).")
        return
    systems = feature_sets()
    print("| data | k | " + " | ".join(systems) + " | per draw (" + " / ".join(systems) + ") |")
    print("|---|---|" + "---|" * (len(systems) + 1))
    for dataset in arguments.datasets:
        train, test = DATASETS[dataset]()
        single = lambda examples: [(text, intent) for text, intent in examples if "+" not in intent]  # noqa: E731
        for k in arguments.k:
            draws = range(1, 2 if k == "all" else arguments.draws + 1)
            results: Dict[str, List[float]] = {name: [] for name in systems}
            for seed in draws:
                drawn = single(draw(train, None if k == "all" else int(k), seed))
                for name, analyzer in systems.items():
                    results[name].append(accuracy(analyzer, drawn, single(test)))
            medians = " | ".join(f"{statistics.median(values):.3f}" for values in results.values())
            per_draw = " / ".join(" ".join(f"{value:.3f}" for value in values) for values in results.values())
            print(f"| {dataset} | {k} | {medians} | {per_draw} |", flush=True)


if __name__ == "__main__":
    main()
