"""Screening the n-gram head's features: today's character n-grams, word-bounded ones, and both.

    .venv/bin/python benchmarks/word_bounded_ngrams.py [--datasets bot cais] [--k 5 10 20 100 all] [--draws 3]

Rasa's DIET pipeline reads character n-grams inside jieba's words (JiebaTokenizer + CountVectorsFeaturizer
`char_wb`); the n-gram head reads them across the whole message. This script compares the two feature
sets, and their union, with the same classifier as `heads.NgramHead` (scikit-learn's multinomial logistic
regression, C = 10, balanced class weights, on TF-IDF features of unit length), on `few_shot.py`'s draws
and test messages (single intents only; Rasa-free, seconds per draw):

- `today`: character 1- to 4-grams of the lower-cased message between a start and an end marker, as the
  head hashes BERT's tokens between [CLS] and [SEP] (for Chinese, characters; an emulation, not the head);
- `word-bounded`: character 1- to 4-grams inside each jieba word padded with spaces (`char_wb`, as DIET);
- `union`: both sets side by side, each TF-IDF weighted, the whole of unit length.

Medians over draws, then each draw. Nothing here is served: it screens a change to the head.
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


def feature_sets() -> Dict[str, Callable[[], object]]:
    """Each system's featurizer (a fresh, unfitted scikit-learn transformer)."""
    import jieba
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import FeatureUnion, make_pipeline
    from sklearn.preprocessing import FunctionTransformer, Normalizer

    jieba.setLogLevel(logging.WARNING)

    def today() -> object:
        marked = FunctionTransformer(lambda texts: [f"^{text.lower()}$" for text in texts])
        return make_pipeline(marked, TfidfVectorizer(analyzer="char", ngram_range=(1, 4), lowercase=False))

    def word_bounded() -> object:
        words = FunctionTransformer(lambda texts: [" ".join(jieba.lcut(text)) for text in texts])
        return make_pipeline(words, TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4)))

    def union() -> object:
        return make_pipeline(FeatureUnion([("today", today()), ("word-bounded", word_bounded())]), Normalizer())

    return {"today": today, "word-bounded": word_bounded, "union": union}


def accuracy(make: Callable[[], object], train: Sequence[tuple], test: Sequence[tuple]) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts, intents = zip(*train)
    model = make_pipeline(make(), LogisticRegression(C=NGRAM_C, class_weight="balanced", max_iter=3000))
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
                for name, make in systems.items():
                    results[name].append(accuracy(make, drawn, single(test)))
            medians = " | ".join(f"{statistics.median(values):.3f}" for values in results.values())
            per_draw = " / ".join(" ".join(f"{value:.3f}" for value in values) for values in results.values())
            print(f"| {dataset} | {k} | {medians} | {per_draw} |", flush=True)


if __name__ == "__main__":
    main()
