"""Few-shot intent accuracy: bert-intent with its defaults against Rasa's DIET, through `rasa train nlu`.

    .venv/bin/python benchmarks/few_shot.py [--k 5 10 20 all] [--draws 3] [--datasets cais bot]
                                            [--systems defaults diet before float32 options]
                                            [--before-ref 6e6f5bd] [--options KEY=VALUE ...] [--first-draw 1]

For each dataset, each k (examples per intent, drawn at random from the training split; `all` takes
every example) and each draw (seeded: the same examples for every system), every system is trained
with `rasa train nlu` in a fresh subprocess and scores the test split through `Agent.parse_message`:

- `defaults`: this checkout's `bert_intent.BertIntentClassifier` with only `model_name` set, to the
  pretrained stand-in ../shared/models/zh-bert-mini-proxy;
- `diet`: JiebaTokenizer + CountVectorsFeaturizer (char_wb, 1-4) + DIETClassifier (100 epochs);
- `before`: the component as it was at `--before-ref` (exported from git; by default the last one
  with constant head weights and calibration), also with only `model_name`;
- `float32`: `defaults` with `mixed_precision: "no"`, beside it where the CPU (or GPU) computes bf16
  and `defaults` trains in bf16 mixed precision (the training log says which);
- `options`: `defaults` with the settings given by `--options` (`validation_split=0.2`; values are
  read as YAML), to measure a setting's default side by side with today's.

For `defaults`, each part of the network is also read alone on the same test messages
(`bert_intent.parts`): the encoder head, the n-gram head, both combined (before the confidences'
familiarity and nearness) and the served model, with the weights and the epoch training chose (`best
epoch / planned`), and per draw how far the served model is from the better of the two heads (#18's
property: at least -0.010), read by accuracy and by the per-intent mean.

Datasets: `cais` (../shared/datasets/cais: train.csv / test.csv; test messages of intents absent from
a draw are left out) and `bot` (example_bot/data/nlu.yml / example_bot/tests/nlu_test.yml). The table
gives medians over the draws of accuracy, macro-F1, the per-intent mean (each intent's accuracy
averaged, every intent counted equally: CAIS's test file is 86 % PlayMusic, a draw's examples are not)
and `rasa train nlu` seconds, then each draw's accuracy / macro-F1 / per-intent mean (so that runs over
other draws, `--first-draw`, can be pooled). Without ../shared (or
$SHARED_DIR) the script says so and exits.
"""

import argparse
import asyncio
import csv
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import yaml

REPOSITORY = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SHARED_DIR", REPOSITORY.parent / "shared"))
PROXY = SHARED / "models" / "zh-bert-mini-proxy"
DIET_PIPELINE = [
    {"name": "JiebaTokenizer"},
    {"name": "CountVectorsFeaturizer", "analyzer": "char_wb", "min_ngram": 1, "max_ngram": 4},
    {"name": "DIETClassifier", "epochs": 100},
]
Examples = List[Tuple[str, str]]


def read_cais(split: str) -> Examples:
    with (SHARED / "datasets" / "cais" / f"{split}.csv").open(encoding="utf-8", newline="") as file:
        rows = [(row["text"].strip(), row["label"].strip()) for row in csv.DictReader(file)]
    return [(text, label) for text, label in rows if text and label]


def read_nlu_yaml(path: Path) -> Examples:
    """The (text, intent) pairs of a Rasa NLU YAML file, entity annotations (`[text](entity)`,
    `[text]{...}`) replaced by their plain text."""
    from rasa.shared.nlu.training_data.entities_parser import replace_entities

    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        (replace_entities(line.strip()[2:]), block["intent"])
        for block in data["nlu"] if "intent" in block
        for line in block["examples"].splitlines() if line.strip().startswith("- ")
    ]


DATASETS = {
    "cais": lambda: (read_cais("train"), read_cais("test")),
    "bot": lambda: (read_nlu_yaml(REPOSITORY / "example_bot" / "data" / "nlu.yml"),
                    read_nlu_yaml(REPOSITORY / "example_bot" / "tests" / "nlu_test.yml")),
}


def draw(examples: Examples, k: Optional[int], seed: int) -> Examples:
    """Up to k examples of every intent (all with k None), the same for every system."""
    by_intent: Dict[str, List[str]] = defaultdict(list)
    for text, intent in examples:
        by_intent[intent].append(text)
    generator = random.Random(seed)
    drawn = []
    for intent in sorted(by_intent):
        texts = sorted(set(by_intent[intent]))
        generator.shuffle(texts)
        drawn += [(text, intent) for text in texts[:k]]
    return drawn


def pipeline(system: str, options: Dict[str, object]) -> List[Dict[str, object]]:
    if system == "diet":
        return DIET_PIPELINE
    component: Dict[str, object] = {"name": "bert_intent.BertIntentClassifier", "model_name": str(PROXY)}
    extra = {"float32": {"mixed_precision": "no"}, "options": options}.get(system, {})
    return [{**component, **extra}]


def parse_options(pairs: List[str]) -> Dict[str, object]:
    """`KEY=VALUE` pairs as component settings, each value read as YAML (`0.2` a number; quote a string
    YAML would read otherwise: `mixed_precision='"no"'`)."""
    options = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator:
            raise SystemExit(f"--options takes KEY=VALUE pairs, not {pair!r}")
        options[key] = yaml.safe_load(value)
    return options


SEED_KEYS = {"DIETClassifier": "random_seed", "bert_intent.BertIntentClassifier": "random_seed",
             "LogisticRegressionClassifier": "random_state"}


def train_nlu_model(directory: Path, examples: Union[Examples, Path], pipeline: List[Dict[str, object]],
                    seed: int) -> str:
    """Train `pipeline` (its classifiers seeded with `seed`) with `rasa train nlu` in `directory` (with
    its own Rasa cache) on `examples`: (text, intent) pairs, or a Rasa NLU file (entity annotations
    and all) to train on as it is. Return the model archive's path."""
    from rasa.model_training import train_nlu

    os.environ["RASA_CACHE_DIRECTORY"] = str(directory / "cache")
    if isinstance(examples, Path):
        nlu_file = examples
    else:
        by_intent: Dict[str, List[str]] = defaultdict(list)
        for text, intent in examples:
            by_intent[intent].append(text)
        nlu = {"version": "3.1", "nlu": [
            {"intent": intent, "examples": "".join(f"- {_literal(text)}\n" for text in texts)}
            for intent, texts in by_intent.items()
        ]}
        nlu_file = directory / "nlu.yml"
        nlu_file.write_text(yaml.safe_dump(nlu, allow_unicode=True), encoding="utf-8")
    pipeline = [dict(component) for component in pipeline]
    for component in pipeline:
        if component["name"] in SEED_KEYS:
            component[SEED_KEYS[component["name"]]] = seed
    config = {"recipe": "default.v1", "language": "zh", "pipeline": pipeline, "policies": None}
    (directory / "config.yml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    return train_nlu(str(directory / "config.yml"), str(nlu_file), str(directory / "models"))


def worker(job: Dict[str, object]) -> Dict[str, object]:
    """Train one system on `job`'s examples with `rasa train nlu` and predict its test texts."""
    from rasa.core.agent import Agent
    from sklearn.metrics import accuracy_score, f1_score, recall_score

    with tempfile.TemporaryDirectory(prefix="few-shot-") as scratch:
        started = time.perf_counter()
        model = train_nlu_model(Path(scratch), job["train"], job["pipeline"], job["seed"])
        seconds = time.perf_counter() - started
        agent = Agent.load(model)

        async def predict(texts: List[str]) -> List[str]:
            return [(await agent.parse_message(text))["intent"]["name"] for text in texts]

        known = sorted({intent for _, intent in job["train"]})
        test = [(text, intent) for text, intent in job["test"] if intent in known]
        predicted = asyncio.run(predict([text for text, _ in test]))
        model_parts = read_parts(Path(model), scratch, test) if job.get("parts") else {}
    gold = [intent for _, intent in test]
    return {
        "accuracy": accuracy_score(gold, predicted),
        "macro_f1": f1_score(gold, predicted, average="macro", labels=known, zero_division=0),
        # bert_intent.parts.per_intent_mean's sklearn call: a `before` package may not have that function
        "per_intent": recall_score(gold, predicted, labels=sorted(set(gold)), average="macro", zero_division=0),
        "seconds": seconds,
        **model_parts,
    }


PARTS = ("encoder", "ngrams", "combined", "served")


def read_parts(archive: Path, scratch: str, test: Examples) -> Dict[str, float]:
    """Each part's intent accuracy on `test` (`bert_intent.parts`), the weights and the epoch training chose."""
    from bert_intent import parts

    with tempfile.TemporaryDirectory(dir=scratch) as unpacked:
        model = parts.load_from_archive(archive, Path(unpacked))
    result = parts.evaluate(model, [text for text, _ in test], [intent for _, intent in test])
    return {
        **{part: result[part] for part in PARTS},
        **{f"{part}_per_intent": result["per_intent_mean"][part] for part in PARTS},
        "encoder_weight": result["intent_weights"]["encoder"], "ngram_weight": result["intent_weights"]["ngrams"],
        "best_epoch": model.summary.get("best_epoch", model.summary["epochs"]), "epochs": model.summary["epochs"],
    }


def parts_cell(runs: List[Dict[str, object]]) -> str:
    """Medians of each part's accuracy, the weights and the epochs kept of those planned, per draw."""
    if "encoder" not in runs[0]:
        return ""
    median = {key: statistics.median(run[key] for run in runs) for key in (*PARTS, "encoder_weight", "ngram_weight")}
    epochs = ",".join(f"{run['best_epoch']}/{run['epochs']}" for run in runs)
    per_draw = ", ".join("/".join(f"{run[part]:.3f}" for part in PARTS) for run in runs)
    per_intent = ", ".join("/".join(f"{run[f'{part}_per_intent']:.3f}" for part in PARTS) for run in runs)
    margins = ", ".join(f"{margin(run, ''):+.3f}/{margin(run, '_per_intent'):+.3f}" for run in runs)
    return (f"  parts: encoder {median['encoder']:.3f} n-grams {median['ngrams']:.3f} combined {median['combined']:.3f}"
            f" served {median['served']:.3f} weights {median['encoder_weight']:.2f}/{median['ngram_weight']:.2f} epochs {epochs}"
            f" (per draw encoder/n-grams/combined/served: {per_draw}; per-intent mean: {per_intent};"
            f" served - better head, accuracy/per-intent mean: {margins})")


def margin(run: Dict[str, object], reading: str) -> float:
    """The served model's score less the better head's, by accuracy (`reading` "") or the per-intent mean."""
    return run[f"served{reading}"] - max(run[f"encoder{reading}"], run[f"ngrams{reading}"])


def _literal(text: str) -> str:
    """The text as a Rasa example line: brackets and parentheses would be read as entity annotations."""
    return text.replace("[", "(").replace("]", ")")


def run_job(job: Dict[str, object], package_root: Path, script: str = __file__) -> Dict[str, object]:
    """Run `script --worker` on `job` in a fresh process that imports bert_intent from `package_root`."""
    environment = {**os.environ, "PYTHONPATH": str(package_root), "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1",
                   "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, script, "--worker"], input=json.dumps(job, ensure_ascii=False), env=environment,
        cwd=tempfile.gettempdir(), capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{job['name']} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def export_package(revision: str, destination: str) -> None:
    """Write the bert_intent package as it was at git `revision` into `destination`."""
    archive = subprocess.run(["git", "-C", str(REPOSITORY), "archive", revision, "bert_intent"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", destination], input=archive, check=True)


def worker_or_skip(is_worker: bool, worker: Callable[[Dict[str, object]], Dict[str, object]]) -> bool:
    """In a worker process, run `worker` on the job read from stdin and print its result; otherwise say
    so when the shared data is missing. True when the benchmark has nothing more to do."""
    if is_worker:
        print(json.dumps(worker(json.loads(sys.stdin.read()))))
        return True
    if not (PROXY / "config.json").is_file() or not (SHARED / "datasets" / "cais" / "train.csv").is_file():
        print(f"The proxy checkpoint or CAIS is not in {SHARED}: skipping (set SHARED_DIR to the shared folder).")
        return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", nargs="+", default=["5", "10", "20", "all"])
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--first-draw", type=int, default=1, help="seed of the first draw (the others follow)")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--systems", nargs="+", default=["defaults", "diet", "before"],
                        choices=["defaults", "diet", "before", "float32", "options"])
    parser.add_argument("--before-ref", default="6e6f5bd", help="git revision of the `before` component")
    parser.add_argument("--options", nargs="*", default=[], help="KEY=VALUE settings of the `options` system")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if worker_or_skip(arguments.worker, worker):
        return
    with tempfile.TemporaryDirectory(prefix="few-shot-before-") as before:
        options = parse_options(arguments.options)
        if "before" in arguments.systems:
            export_package(arguments.before_ref, before)
        print(f"{'dataset':<8} {'k':>4} {'system':<9} {'accuracy':>8} {'macro-F1':>8} {'per-intent':>10} {'train s':>8}"
              "  per draw (accuracy/macro-F1/per-intent mean)", flush=True)
        for dataset in arguments.datasets:
            train, test = DATASETS[dataset]()
            for k in arguments.k:
                for system in arguments.systems:
                    runs = []
                    for seed in range(arguments.first_draw, arguments.first_draw + arguments.draws):
                        job = {"name": f"{dataset} k={k} {system} draw {seed}", "seed": seed, "pipeline": pipeline(system, options),
                               "train": draw(train, None if k == "all" else int(k), seed), "test": test,
                               "parts": system not in ("diet", "before")}
                        runs.append(run_job(job, Path(before) if system == "before" else REPOSITORY))
                    median = {key: statistics.median(run[key] for run in runs)
                              for key in ("accuracy", "macro_f1", "per_intent", "seconds")}
                    draws = " ".join(f"{run['accuracy']:.3f}/{run['macro_f1']:.3f}/{run['per_intent']:.3f}" for run in runs)
                    print(f"{dataset:<8} {k:>4} {system:<9} {median['accuracy']:>8.3f} {median['macro_f1']:>8.3f} "
                          f"{median['per_intent']:>10.3f} {median['seconds']:>8.0f}  {draws}{parts_cell(runs)}", flush=True)


if __name__ == "__main__":
    main()
