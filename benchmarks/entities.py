"""Entity extraction (spans, roles, groups) and intents together, against DIET and a CRF, through `rasa train nlu`.

    .venv/bin/python benchmarks/entities.py [--datasets cais bot] [--seeds 3] [--per-intent 300]
                                            [--systems ours ours_intent_only diet crf offline before]
                                            [--before-ref 24650e7]

For each dataset, system and seed, the system is trained with `rasa train nlu` in a fresh subprocess on
the annotated training file and parses every test message through `Agent.parse_message`:

- `ours`: this checkout's `bert_intent.BertIntentClassifier` with only `model_name` set, to the
  pretrained stand-in ../shared/models/zh-bert-mini-proxy (intents and entities);
- `ours_intent_only`: the same with `entity_recognition: false` (its entity columns are n/a): the
  intent accuracy `ours` must not fall below;
- `diet`: JiebaTokenizer + CountVectorsFeaturizer (char_wb, 1-4) + DIETClassifier (100 epochs), intents
  and entities;
- `crf`: JiebaTokenizer + CountVectorsFeaturizer (char_wb, 1-4) + LogisticRegressionClassifier +
  CRFEntityExtractor (its default features); its intent accuracy (marked *) is the logistic regression's;
- `offline` (bot only): the BertIntentClassifier entry of example_bot/config_offline.yml (a mini BERT
  from scratch; its fallback classifier dropped). Product target: bot span F1 >= 0.90;
- `before`: `ours` with the component as it was at `--before-ref` (exported from git), to compare a change
  with today's behaviour in one run.
Every system's classifiers are seeded with the seed.

Datasets (read with Rasa's own loader, so annotations are exact): `cais` (../shared/datasets/cais:
train_nlu.yml / test_nlu.yml; training takes, per seed, a random draw of up to `--per-intent` examples
of each intent, a bot-sized set; `--per-intent 0` takes the whole file; every test message is scored,
GetDate's too, which has no training example) and `bot` (example_bot/data/nlu.yml /
example_bot/tests/nlu_test.yml, whole files).

Columns (medians over seeds; each seed's numbers are printed as it ends):
- `intent`: intent accuracy on the test messages;
- `span P`, `span R`, `span F1`: micro precision, recall and F1 over all entity spans of the test set,
  from every extractor in the output (`entities`). A span is (start, end, type) and counts only with
  exact character boundaries and exact type; the type is the entity, plus `#role` where one is given,
  plus `@group` where one is given (predicted roles and groups are scored the same way). Values are
  not compared (synonym mapping does not matter);
- `frame`: share of test messages with the right intent AND exactly the gold set of spans;
- `train s`: seconds of `rasa train nlu`;
- for `ours` and `offline`, printed per seed: the span F1 of each tag head alone and of both combined on the test
  messages (each token's most probable tag) and of the decoded entities (`bert_intent.parts`), the tag weights
  and the weight of the tag transitions in the decoding that training chose;
- `misaligned`: training messages Rasa warned about ("Misaligned entity annotation": an entity whose
  boundaries are not token boundaries of the pipeline's tokenizer, so that the extractor cannot learn
  it exactly), out of the training messages with entities.
Then, for CAIS, the published reference (CM-Net, trained on the whole CAIS train split), and for the bot,
span F1 per entity type and system (medians over seeds). Without ../shared (or $SHARED_DIR), or without
CAIS's NLU files in it, the script says so and exits.
"""

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from pathlib import Path
from typing import Dict, List, Optional, Set, Tuple

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from few_shot import DIET_PIPELINE, PROXY, REPOSITORY, SHARED, export_package, run_job, train_nlu_model, worker_or_skip  # noqa: E402

CAIS = SHARED / "datasets" / "cais"
FILES = {
    "cais": (CAIS / "train_nlu.yml", CAIS / "test_nlu.yml"),
    "bot": (REPOSITORY / "example_bot" / "data" / "nlu.yml", REPOSITORY / "example_bot" / "tests" / "nlu_test.yml"),
}
OFFLINE_CONFIG = REPOSITORY / "example_bot" / "config_offline.yml"
SYSTEMS = ["ours", "ours_intent_only", "diet", "crf", "offline", "before"]
CRF_PIPELINE = [
    {"name": "JiebaTokenizer"},
    {"name": "CountVectorsFeaturizer", "analyzer": "char_wb", "min_ngram": 1, "max_ngram": 4},
    {"name": "LogisticRegressionClassifier"},
    {"name": "CRFEntityExtractor"},
]
CM_NET = "CM-Net (EMNLP 2019, full CAIS train): intent accuracy 0.9456, slot F1 0.8616"
COLUMNS = ("intent", "precision", "recall", "f1", "frame", "seconds", "misaligned")
Span = Tuple[int, int, str]


def pipeline(system: str) -> List[Dict[str, object]]:
    ours = {"name": "bert_intent.BertIntentClassifier", "model_name": str(PROXY)}
    if system in ("ours", "before"):
        return [ours]
    if system == "ours_intent_only":
        return [{**ours, "entity_recognition": False}]
    if system == "diet":
        return DIET_PIPELINE
    if system == "crf":
        return CRF_PIPELINE
    config = yaml.safe_load(OFFLINE_CONFIG.read_text(encoding="utf-8"))
    return [component for component in config["pipeline"] if not component["name"].endswith("FallbackClassifier")]


def spans(entities: List[Dict[str, object]]) -> Set[Span]:
    """The (start, end, type) of each entity; the type is `entity[#role][@group]`."""
    return {
        (int(entity["start"]), int(entity["end"]), str(entity["entity"])
         + (f"#{entity['role']}" if entity.get("role") else "") + (f"@{entity['group']}" if entity.get("group") else ""))
        for entity in entities
    }


def load(path: Path):
    from rasa.shared.nlu.training_data.loading import load_data

    return load_data(str(path))


def training_file(data, path: Path, per_intent: int, seed: int) -> Tuple[Dict[str, str], int]:
    """The job's training data: up to `per_intent` examples of each intent, drawn at random with `seed`
    (written back with Rasa's writer), or the file itself when nothing is dropped; and how many of its
    messages have entities."""
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLWriter

    by_intent: Dict[str, List[object]] = defaultdict(list)
    for message in data.intent_examples:
        by_intent[message.get("intent")].append(message)
    if not per_intent or all(len(messages) <= per_intent for messages in by_intent.values()):
        return {"nlu_file": str(path)}, sum(bool(message.get("entities")) for message in data.intent_examples)
    generator = random.Random(seed)
    kept = set()
    for intent in sorted(by_intent):
        messages = list(by_intent[intent])
        generator.shuffle(messages)
        kept.update(id(message) for message in messages[:per_intent])
    drawn = data.filter_training_examples(lambda message: id(message) in kept)
    return {"nlu_yaml": RasaYAMLWriter().dumps(drawn)}, sum(bool(message.get("entities")) for message in drawn.intent_examples)


def worker(job: Dict[str, object]) -> Dict[str, object]:
    """Train one system on the job's NLU data, and return each test text's intent and entity spans."""
    from rasa.core.agent import Agent

    with tempfile.TemporaryDirectory(prefix="entities-") as scratch:
        directory = Path(scratch)
        if job.get("nlu_file"):
            nlu = Path(job["nlu_file"])
        else:
            nlu = directory / "train_nlu.yml"
            nlu.write_text(job["nlu_yaml"], encoding="utf-8")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            started = time.perf_counter()
            model = train_nlu_model(directory, nlu, job["pipeline"], job["seed"])
            seconds = time.perf_counter() - started
        agent = Agent.load(model)

        async def parse(texts: List[str]) -> List[List[object]]:
            results = [await agent.parse_message(text) for text in texts]
            return [[(result.get("intent") or {}).get("name"), sorted(spans(result.get("entities") or []))]
                    for result in results]

        predicted = asyncio.run(parse(job["test"]))
        tag_parts = read_tag_parts(Path(model), scratch, job) if job["system"] in ("ours", "offline") else {}
    misaligned = sum("Misaligned entity annotation" in str(warning.message) for warning in caught)
    return {"predicted": predicted, "seconds": seconds, "misaligned": misaligned, "parts": tag_parts}


def read_tag_parts(archive: Path, scratch: str, job: Dict[str, object]) -> Dict[str, float]:
    """Span F1 of each tag head alone and combined on the test messages (`bert_intent.parts`), and
    the tag weights training chose."""
    from bert_intent import parts

    with tempfile.TemporaryDirectory(dir=scratch) as unpacked:
        model = parts.load_from_archive(archive, Path(unpacked))
    result = parts.evaluate_entities(model, job["test"], job["test_entities"])
    weights = result.pop("tag_weights")
    return {**result, "tag_weight_encoder": weights["encoder"], "tag_weight_ngrams": weights["ngrams"]}


def f1(true_positives: int, false_positives: int, false_negatives: int) -> Tuple[float, float, float]:
    precision = true_positives / (true_positives + false_positives) if true_positives + false_positives else 0.0
    recall = true_positives / (true_positives + false_negatives) if true_positives + false_negatives else 0.0
    return precision, recall, 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def score(gold: List[Tuple[str, Set[Span]]], predicted: List[List[object]], entities: bool) -> Dict[str, object]:
    """Intent accuracy, micro span precision / recall / F1, frame accuracy and F1 per entity type."""
    counts: Dict[str, Counter] = defaultdict(Counter)  # type -> tp, fp, fn
    intents_right, frames_right = 0, 0
    for (intent, gold_spans), (predicted_intent, predicted_spans) in zip(gold, predicted):
        predicted_spans = {tuple(span) for span in predicted_spans}
        intents_right += predicted_intent == intent
        frames_right += predicted_intent == intent and predicted_spans == gold_spans
        for span in gold_spans | predicted_spans:
            counts[span[2]]["tp" if span in gold_spans and span in predicted_spans
                            else "fn" if span in gold_spans else "fp"] += 1
    total = sum(counts.values(), Counter())
    precision, recall, micro_f1 = f1(total["tp"], total["fp"], total["fn"])
    return {
        "intent": intents_right / len(gold),
        **({"precision": precision, "recall": recall, "f1": micro_f1, "frame": frames_right / len(gold),
            "per_type": {kind: f1(count["tp"], count["fp"], count["fn"])[2] for kind, count in counts.items()}}
           if entities else {"precision": None, "recall": None, "f1": None, "frame": None, "per_type": {}}),
    }


def _cell(value: Optional[float], digits: int = 3, width: int = 7) -> str:
    return f"{'n/a':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def _median(values: List[Optional[float]]) -> Optional[float]:
    values = [value for value in values if value is not None]
    return statistics.median(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(FILES), choices=list(FILES))
    parser.add_argument("--systems", nargs="+", default=SYSTEMS, choices=SYSTEMS)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--per-intent", type=int, default=300,
                        help="CAIS training examples per intent, at most (0: all of train_nlu.yml)")
    parser.add_argument("--before-ref", default="24650e7", help="git revision of the `before` component")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if worker_or_skip(arguments.worker, worker):
        return
    if not all(path.is_file() for path in FILES["cais"]):
        print(f"CAIS's train_nlu.yml / test_nlu.yml are not in {CAIS}: skipping (set SHARED_DIR to the shared folder).")
        return
    with tempfile.TemporaryDirectory(prefix="entities-before-") as before:
        if "before" in arguments.systems:
            export_package(arguments.before_ref, before)
        run(arguments, Path(before))


def run(arguments: argparse.Namespace, before: Path) -> None:
    """Train and score every dataset, system and seed; print the rows as they end, then the tables."""
    header = (f"{'dataset':<7} {'system':<16} {'intent':>8} {'span P':>7} {'span R':>7} {'span F1':>7} {'frame':>7} "
              f"{'train s':>7} {'misaligned':>12}")
    rows, per_type = [header], {}
    print(header, flush=True)
    for dataset in arguments.datasets:
        train_path, test_path = FILES[dataset]
        train, test = load(train_path), load(test_path)
        gold = [(message.get("intent"), spans(message.get("entities") or [])) for message in test.intent_examples]
        texts = [message.get("text") for message in test.intent_examples]
        print(f"  {dataset}: {len(train.intent_examples)} training messages "
              f"({sum(bool(message.get('entities')) for message in train.intent_examples)} with entities), "
              f"{len(gold)} test messages, {sum(len(message_spans) for _, message_spans in gold)} test spans", flush=True)
        for system in arguments.systems:
            if system == "offline" and dataset != "bot":
                continue
            runs = []
            for seed in range(1, arguments.seeds + 1):
                nlu, with_entities = training_file(train, train_path, 0 if dataset == "bot" else arguments.per_intent, seed)
                job = {"name": f"{dataset} {system} seed {seed}", "seed": seed, "pipeline": pipeline(system),
                       "test": texts, "system": system, **nlu,
                       "test_entities": [message.get("entities") or [] for message in test.intent_examples]}
                result = run_job(job, before if system == "before" else REPOSITORY, __file__)
                runs.append({**score(gold, result["predicted"], system != "ours_intent_only"), **result["parts"],
                             "seconds": result["seconds"], "misaligned": result["misaligned"], "with_entities": with_entities})
                print(f"  {job['name']}: " + json.dumps(
                    {key: round(value, 3) if isinstance(value, float) else value
                     for key, value in runs[-1].items() if key != "per_type"}), flush=True)
            median = {column: _median([run[column] for run in runs]) for column in COLUMNS}
            trained_with_entities = statistics.median(run["with_entities"] for run in runs)
            row = (f"{dataset:<7} {system:<16} {_cell(median['intent'], width=7)}{'*' if system == 'crf' else ' '} "
                   + " ".join(_cell(median[column]) for column in ("precision", "recall", "f1", "frame"))
                   + f" {median['seconds']:>7.0f} {median['misaligned']:>5.0f}/{trained_with_entities:<6.0f}")
            rows.append(row)
            print(row, flush=True)
            if dataset == "bot" and system != "ours_intent_only":
                kinds = {kind for run in runs for kind in run["per_type"]}
                per_type[system] = {kind: statistics.median(run["per_type"].get(kind, 0.0) for run in runs)
                                    for kind in kinds}
    print("\n" + "\n".join(rows))
    if "crf" in arguments.systems:
        print("* crf: the intent is LogisticRegressionClassifier's (the CRF extracts entities only)")
    if "cais" in arguments.datasets:
        print(f"Reference: {CM_NET}")
    if per_type:
        kinds = sorted({kind for table in per_type.values() for kind in table})
        print("\nbot span F1 per entity type (medians over seeds)")
        print(f"{'type':<24} " + " ".join(f"{system:>9}" for system in per_type))
        for kind in kinds:
            print(f"{kind:<24} " + " ".join(_cell(table.get(kind), width=9) for table in per_type.values()))


if __name__ == "__main__":
    main()
