"""Open-world confidence: calibration, out-of-scope and gibberish detection, through `rasa train nlu`.

    .venv/bin/python benchmarks/confidence.py [--known 0.25 0.5 0.75] [--seeds 3] [--first-seed 1] [--datasets cais bot]
                                              [--systems ours before diet options] [--before-ref 6e6f5bd]
                                              [--options KEY=VALUE ...] [--per-intent 300]

Open-intent protocol: for each dataset, share of known intents and seed, every system is trained with
`rasa train nlu` in a fresh subprocess on the known intents only and parses, through
`Agent.parse_message`, the test messages of the known intents (in-scope), those of the other intents
(out-of-scope), 300 generated gibberish messages (`bert_intent.confidence.gibberish`, the kind training
calibrates beside) and 100 messages of each of four other kinds of nonsense, which training never sees
(`nonsense`): Latin keyboard mashes, digits, runs of punctuation, and the training examples' own
characters in random order.

- `cais`: ../shared/datasets/cais; the known intents are drawn at random per seed; training takes up
  to `--per-intent` examples of each (a bot-sized set, and DIET trains in minutes).
- `bot`: the example bot; every intent but `out_of_scope` is known, its test messages are the
  out-of-scope ones (`--known` does not apply).

Systems: `ours` (this checkout, only `model_name` set, to the pretrained stand-in), `before` (the
component at `--before-ref`, by default the last one with constant head weights and calibration) and
`diet` (JiebaTokenizer + CountVectorsFeaturizer char_wb 1-4 + DIETClassifier, 100 epochs) and
`options` (`ours` with the settings given by `--options`, as in `few_shot.py`).

Columns (medians over seeds): in-scope accuracy; ECE of the top confidence on in-scope messages, as
they come (`ece`) and with each intent weighing its share of the training examples (`ece_mix`: CAIS's
test file is up to 89 % PlayMusic where training takes at most `--per-intent` of each intent, a shift of
the intents' mix that no held-out example can show, so `ece_mix` reads the calibration without it);
AUROC of in-scope against out-of-scope by top confidence; the share of out-of-scope messages kept at
the threshold that keeps 95 % of in-scope ones (FPR95); and at a threshold: in-scope messages kept
with their correct intent, out-of-scope and gibberish caught (below it), and open-class macro-F1
(the known intents plus "open" for messages below it, as in ADB); then the share of each other kind of
nonsense caught at that threshold (`latin`, `digits`, `punctuation`, `familiar`). The threshold is ours's recommended
one (from its training summary); the baselines recommend none, so they get the one that keeps 95 % of
their in-scope test messages, chosen on the test set itself (in their favour). For `ours` (and `options`), each part of
the network is also read alone on the in-scope messages (`bert_intent.parts`): intent accuracy of the
encoder head, the n-gram head and the served model, the weights and the epochs kept of those planned.
"""

import argparse
import asyncio
import json
import random
import statistics
import sys
import tarfile
import tempfile
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from few_shot import (  # noqa: E402
    DATASETS, REPOSITORY, Examples, draw, export_package, parse_options, parts_cell, pipeline, read_parts, run_job,
    train_nlu_model, worker_or_skip,
)

GIBBERISH_MESSAGES = 300
NONSENSE_MESSAGES = 100
NONSENSE_KINDS = ("latin", "digits", "punctuation", "familiar")
COLUMNS = ("accuracy", "ece", "ece_mix", "auroc", "fpr95", "threshold", "kept_correct", "oos_caught", "gibberish_caught", "open_f1",
           *NONSENSE_KINDS)


def worker(job: Dict[str, object]) -> Dict[str, object]:
    """Train one system on the job's examples and return the top intent and confidence of each test text."""
    from rasa.core.agent import Agent

    with tempfile.TemporaryDirectory(prefix="confidence-") as scratch:
        model = train_nlu_model(Path(scratch), job["train"], job["pipeline"], job["seed"])
        agent = Agent.load(model)

        async def parse(texts: List[str]) -> List[List[object]]:
            results = [await agent.parse_message(text) for text in texts]
            return [[result["intent"]["name"], float(result["intent"]["confidence"])] for result in results]

        parsed = {part: asyncio.run(parse(job[part])) for part in ("in_scope", "out_of_scope", "gibberish", *NONSENSE_KINDS)}
        in_scope = list(zip(job["in_scope"], job["in_scope_intents"]))
        model_parts = read_parts(Path(model), scratch, in_scope) if job["system"] in ("ours", "options") else {}
        return {**parsed, "recommended_threshold": _recommended_threshold(Path(model)), "parts": model_parts}


def _recommended_threshold(archive: Path) -> Optional[float]:
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.name.endswith("bert_intent.json"):
                calibration = json.load(tar.extractfile(member)).get("calibration")
                return calibration["threshold"] if calibration else None
    return None


def nonsense(training_texts: List[str], seed: int) -> Dict[str, List[str]]:
    """`NONSENSE_MESSAGES` messages of each kind of nonsense other than the generated gibberish: Latin
    keyboard mashes (3 to 12 letters), digits (1 to 8), runs of punctuation (1 to 5 marks), and 2 to 8 of
    the training examples' own CJK characters in random order (some of which, like 好好, are real answers)."""
    generator = random.Random(seed)
    own = sorted({character for text in training_texts for character in text if "\u4e00" <= character <= "\u9fff"})
    kinds = {"latin": ("qwertyuiopasdfghjklzxcvbnm", 3, 12), "digits": ("0123456789", 1, 8),
             "punctuation": ("?？!！。.,，~～…", 1, 5), "familiar": (own, 2, 8)}
    return {kind: ["".join(generator.choice(pool) for _ in range(generator.randint(shortest, longest)))
                   for _ in range(NONSENSE_MESSAGES)]
            for kind, (pool, shortest, longest) in kinds.items()}


def separation(in_scope: np.ndarray, other: np.ndarray) -> Dict[str, float]:
    """AUROC of in-scope scores against the other messages' and the share of those at or above the
    score that keeps 95 % of in-scope messages (FPR95), with that score (`keeps_95`)."""
    from sklearn.metrics import roc_auc_score

    keeps_95 = float(np.quantile(in_scope, 0.05, method="lower"))
    return {"auroc": float(roc_auc_score(np.r_[np.ones(len(in_scope)), np.zeros(len(other))], np.r_[in_scope, other])),
            "fpr95": float(np.mean(other >= keeps_95)), "keeps_95": keeps_95}


def training_mix_weights(in_scope_intents: List[str], training_intents: List[str]) -> np.ndarray:
    """Each in-scope test message's weight that gives every intent its share of the training examples
    (its share of the training examples over its share of the in-scope test messages)."""
    test_counts, training_counts = Counter(in_scope_intents), Counter(training_intents)
    return np.array([training_counts[intent] / len(training_intents) / (test_counts[intent] / len(in_scope_intents))
                     for intent in in_scope_intents])


def metrics(parsed: Dict[str, object], in_scope_intents: List[str], known: List[str],
            training_intents: List[str]) -> Dict[str, float]:
    from sklearn.metrics import f1_score

    from bert_intent.confidence import expected_calibration_error

    def confidences(part: str) -> np.ndarray:
        return np.array([confidence for _, confidence in parsed[part]])

    inside, outside, gibberish = confidences("in_scope"), confidences("out_of_scope"), confidences("gibberish")
    correct = np.array([name == intent for (name, _), intent in zip(parsed["in_scope"], in_scope_intents)])
    separated = separation(inside, outside)
    threshold = parsed["recommended_threshold"] if parsed["recommended_threshold"] is not None else separated["keeps_95"]
    gold = list(in_scope_intents) + ["open"] * len(outside)
    predicted = [name if confidence >= threshold else "open"
                 for name, confidence in parsed["in_scope"] + parsed["out_of_scope"]]
    return {
        **parsed["parts"],
        "accuracy": float(correct.mean()),
        "ece": expected_calibration_error(inside, correct),
        "ece_mix": expected_calibration_error(inside, correct, weights=training_mix_weights(in_scope_intents, training_intents)),
        "auroc": separated["auroc"],
        "fpr95": separated["fpr95"],
        "threshold": threshold,
        "kept_correct": float(np.mean(correct & (inside >= threshold))),
        "oos_caught": float(np.mean(outside < threshold)),
        "gibberish_caught": float(np.mean(gibberish < threshold)),
        "open_f1": float(f1_score(gold, predicted, labels=sorted(known) + ["open"], average="macro", zero_division=0)),
        **{kind: float(np.mean(confidences(kind) < threshold)) for kind in NONSENSE_KINDS},
    }


def splits(dataset: str, known_share: float, seed: int, per_intent: int) -> Dict[str, Examples]:
    """Training examples of the known intents, and the in-scope and out-of-scope test examples."""
    train, test = DATASETS[dataset]()
    if dataset == "bot":
        known = sorted({intent for _, intent in train} - {"out_of_scope"})
    else:
        intents = sorted({intent for _, intent in train})
        random.Random(seed).shuffle(intents)
        known = sorted(intents[: max(1, round(known_share * len(intents)))])
        train = draw(train, per_intent, seed)
    return {
        "train": [(text, intent) for text, intent in train if intent in known],
        "in_scope": [(text, intent) for text, intent in test if intent in known],
        "out_of_scope": [(text, intent) for text, intent in test if intent not in known],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--known", nargs="+", type=float, default=[0.25, 0.5, 0.75])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=1, help="the first seed (the others follow), so later seeds can be pooled")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--systems", nargs="+", default=["ours", "before", "diet"], choices=["ours", "before", "diet", "options"])
    parser.add_argument("--before-ref", default="6e6f5bd", help="git revision of the `before` component")
    parser.add_argument("--options", nargs="*", default=[], help="KEY=VALUE settings of the `options` system")
    parser.add_argument("--per-intent", type=int, default=300, help="CAIS training examples per intent, at most")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if worker_or_skip(arguments.worker, worker):
        return
    sys.path.insert(0, str(REPOSITORY))
    from bert_intent.confidence import gibberish

    with tempfile.TemporaryDirectory(prefix="confidence-before-") as before_root:
        roots = {"ours": REPOSITORY, "diet": REPOSITORY, "options": REPOSITORY, "before": Path(before_root)}
        options = parse_options(arguments.options)
        if "before" in arguments.systems:
            export_package(arguments.before_ref, before_root)
        print(f"{'dataset':<7} {'known':>5} {'system':<8} " + " ".join(f"{column:>9}" for column in COLUMNS), flush=True)
        for dataset in arguments.datasets:
            for known_share in (arguments.known if dataset == "cais" else [1.0]):
                for system in arguments.systems:
                    runs = []
                    for seed in range(arguments.first_seed, arguments.first_seed + arguments.seeds):
                        data = splits(dataset, known_share, seed, arguments.per_intent)
                        job = {
                            "name": f"{dataset} {known_share} {system} seed {seed}", "system": system, "seed": seed,
                            "pipeline": pipeline(system, options),
                            "train": data["train"], "in_scope": [text for text, _ in data["in_scope"]],
                            "in_scope_intents": [intent for _, intent in data["in_scope"]],
                            "out_of_scope": [text for text, _ in data["out_of_scope"]],
                            "gibberish": gibberish(GIBBERISH_MESSAGES, 1000 + seed),
                            **nonsense([text for text, _ in data["train"]], 2000 + seed),
                        }
                        parsed = run_job(job, roots[system], __file__)
                        known = sorted({intent for _, intent in data["train"]})
                        runs.append(metrics(parsed, [intent for _, intent in data["in_scope"]], known,
                                            [intent for _, intent in data["train"]]))
                        print(f"  {job['name']}: " + json.dumps({key: round(value, 3) for key, value in runs[-1].items()}),
                              flush=True)
                    median = {column: statistics.median(run[column] for run in runs) for column in COLUMNS}
                    print(f"{dataset:<7} {known_share:>5.2f} {system:<8} "
                          + " ".join(f"{median[column]:>9.3f}" for column in COLUMNS) + parts_cell(runs), flush=True)


if __name__ == "__main__":
    main()
