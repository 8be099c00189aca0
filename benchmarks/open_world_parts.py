"""Which part of the model tells out-of-scope messages apart: each score alone, beside the served confidence.

    .venv/bin/python benchmarks/open_world_parts.py [--datasets cais bot] [--seeds 3] [--first-seed 1]
                                                    [--known 0.75] [--per-intent 300] [--model-name DIR]

The same splits as `confidence.py` (CAIS with a share of its intents known, or the example bot without
`out_of_scope`), trained in-process with only `model_name` set (Rasa-free `fine_tune`). Each message's
top score under each part: the served confidence; the two intent heads combined (closed set); the
encoder head and the n-gram head alone; the familiarity (lexical); the cosine to the nearest intent
centroid (what the served model uses of the representation); and two alternatives read from the same
fine-tuned representation, not served: the cosine to the nearest training example, and the Mahalanobis
distance to the nearest intent mean under one covariance shared by all intents (Ledoit-Wolf shrinkage).
Columns: AUROC of in-scope against out-of-scope messages, FPR95 (out-of-scope kept at the score that
keeps 95 % of in-scope ones) and the AUROC of in-scope messages against 300 generated gibberish ones;
medians over seeds, then per seed.
"""

import argparse
import logging
import statistics
import sys
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from confidence import separation, splits  # noqa: E402
from few_shot import DATASETS, PROXY  # noqa: E402

GIBBERISH_MESSAGES = 300


def part_scores(train: Dict[str, np.ndarray], label_ids: np.ndarray) -> Dict[str, Callable[[Dict[str, np.ndarray]], np.ndarray]]:
    """Each part's top score of a message (higher: more in scope), from the network's outputs; the
    alternatives are fitted on the training examples' representations and intents."""
    from sklearn.covariance import LedoitWolf

    representations = train["representation"]
    means = np.stack([representations[label_ids == label].mean(axis=0) for label in range(int(label_ids.max()) + 1)])
    precision = LedoitWolf().fit(representations - means[label_ids]).precision_

    def mahalanobis(outputs: Dict[str, np.ndarray]) -> np.ndarray:
        differences = outputs["representation"][:, None, :] - means[None]
        return -np.einsum("nkd,de,nke->nk", differences, precision, differences).min(axis=1)

    top = lambda name: lambda outputs: outputs[name].max(axis=1)  # noqa: E731
    return {
        "served confidence": top("confidences"),
        "heads combined": top("logits"),
        "encoder head": top("encoder_log_probs"),
        "n-gram head": top("ngram_log_probs"),
        "familiarity": top("familiarity"),
        "centroid cosine (served)": top("similarity"),
        "nearest example cosine": lambda outputs: (outputs["representation"] @ representations.T).max(axis=1),
        "Mahalanobis, shared covariance": mahalanobis,
    }


def run(dataset: str, known: float, seed: int, per_intent: int, model_name: str) -> Dict[str, Dict[str, float]]:
    from bert_intent import confidence, held_out, settings
    from bert_intent.training import fine_tune

    data = splits(dataset, known, seed, per_intent)
    model = fine_tune(*zip(*data["train"]), settings.validate({"model_name": model_name, "random_seed": seed}))
    index = {label: position for position, label in enumerate(model.labels)}
    train = [(text, intent) for text, intent in data["train"] if intent in index]  # two-intent examples are not labels

    def outputs(texts: List[str]) -> Dict[str, np.ndarray]:
        return held_out.outputs(model.network, model.tokenizer, texts, model.settings.max_length, model.settings.batch_size)

    scores = part_scores(outputs([text for text, _ in train]), np.array([index[intent] for _, intent in train]))
    in_scope = outputs([text for text, intent in data["in_scope"] if intent in index])
    out_of_scope = outputs([text for text, _ in data["out_of_scope"]])
    gibberish = outputs(confidence.gibberish(GIBBERISH_MESSAGES, seed))
    rows = {}
    for name, score in scores.items():
        inside = score(in_scope)
        against_out_of_scope = separation(inside, score(out_of_scope))
        rows[name] = {"auroc": against_out_of_scope["auroc"], "fpr95": against_out_of_scope["fpr95"],
                      "gibberish_auroc": separation(inside, score(gibberish))["auroc"]}
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=1, help="the first CAIS seed (the others follow), as in confidence.py")
    parser.add_argument("--known", type=float, default=0.75, help="share of CAIS's intents known")
    parser.add_argument("--per-intent", type=int, default=300)
    parser.add_argument("--model-name", default=str(PROXY), help="the checkpoint (default: the stand-in), e.g. adapted_encoder.py's")
    arguments = parser.parse_args()
    if not (PROXY / "config.json").is_file():
        print(f"The proxy checkpoint is not in {PROXY}: skipping (set SHARED_DIR to the shared folder).")
        return
    logging.basicConfig(level=logging.WARNING)
    for dataset in arguments.datasets:
        seeds = [1] if dataset == "bot" else list(range(arguments.first_seed, arguments.first_seed + arguments.seeds))
        runs = [run(dataset, arguments.known, seed, arguments.per_intent, arguments.model_name) for seed in seeds]
        print(f"\n{dataset}{'' if dataset == 'bot' else f', {arguments.known:.0%} of intents known'}, seeds {seeds}")
        print(f"{'part':<32} {'AUROC':>6} {'FPR95':>6} {'gibberish AUROC':>16}  per seed (AUROC / FPR95)")
        for name in runs[0]:
            median = {key: statistics.median(run[name][key] for run in runs) for key in runs[0][name]}
            per_seed = "  ".join(f"{run[name]['auroc']:.3f} / {run[name]['fpr95']:.3f}" for run in runs)
            print(f"{name:<32} {median['auroc']:>6.3f} {median['fpr95']:>6.3f} {median['gibberish_auroc']:>16.3f}  {per_seed}",
                  flush=True)


if __name__ == "__main__":
    main()
