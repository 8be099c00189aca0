"""Two intents in one message (Rasa's multi-intents): bert-intent against DIET, through `rasa train nlu`.

    .venv/bin/python benchmarks/multi_intent.py [--datasets bot cais] [--draws 3] [--pairs 25]
                                                [--systems ours diet before] [--before-ref f7932b8]

Test messages, built as MixATIS and MixSNIPS were: two held-out single-intent messages of a declared
multi-intent's parts (in either order), joined with a natural connector ("，顺便", "，还有", "然后",
"，另外"), their entity annotations carried over; plus every held-out single-intent message.

Training data: the single-intent data plus at most 3 examples per multi-intent.
- `bot`: example_bot/data/nlu.yml as it is (its multi-intents have 3 examples each); held-out messages
  from example_bot/tests/nlu_test.yml.
- `cais` (../shared/datasets/cais): per draw, up to `--per-intent` examples of each intent of train.jsonl,
  plus 3 examples of each multi-intent in CAIS_JOINED made of drawn training messages like the test ones;
  held-out messages from test.jsonl (singles) and test.jsonl + dev.jsonl (parts of the joined messages).

Systems, each trained with `rasa train nlu` in a fresh subprocess and read through `Agent.parse_message`:
- `ours`: this checkout's BertIntentClassifier with only `model_name` set, to the pretrained stand-in
  ../shared/models/zh-bert-mini-proxy (multi-intents learned from their parts);
- `diet`: JiebaTokenizer (`intent_tokenization_flag: true`, `intent_split_symbol: +`) + CountVectorsFeaturizer
  (char_wb, 1-4) + DIETClassifier (100 epochs): a multi-intent is one more label, learned from its examples;
- `before`: the component at `--before-ref` (no multi-intent support: a joined name is an ordinary label),
  for the single-intent accuracy that must not drop.

Columns, medians over the draws (each draw printed as it ends):
- `joined`: exact-match accuracy of the intent on two-intent messages;
- `single`: intent accuracy on single-intent messages;
- `joined span F1`: micro span F1 of the entities in two-intent messages (exact boundaries and type,
  `#role` included where given);
- `ECE`: expected calibration error of the top confidence over all test messages (10 bins).
Without ../shared (or $SHARED_DIR) the script says so and exits.
"""

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence, Set, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))
from few_shot import PROXY, REPOSITORY, SHARED, export_package, run_job, train_nlu_model, worker_or_skip  # noqa: E402

CONNECTORS = ("，顺便", "，还有", "然后", "，另外")
BOT_JOINED = ("book_flight+ask_weather", "book_train+ask_weather", "set_alarm+ask_weather", "play_music+set_alarm")
CAIS_JOINED = ("PlayMusic+GetWeather", "Remind+GetWeather", "GetWeather+GetNews", "PlayFMStory+Remind", "PlayPoem+Remind")
EXAMPLES_PER_JOINED = 3
Example = Dict[str, Any]  # text, intent, entities (start, end, value, entity, role)

PIPELINES = {
    "ours": [{"name": "bert_intent.BertIntentClassifier", "model_name": str(PROXY)}],
    "before": [{"name": "bert_intent.BertIntentClassifier", "model_name": str(PROXY)}],
    "diet": [
        {"name": "JiebaTokenizer", "intent_tokenization_flag": True, "intent_split_symbol": "+"},
        {"name": "CountVectorsFeaturizer", "analyzer": "char_wb", "min_ngram": 1, "max_ngram": 4},
        {"name": "DIETClassifier", "epochs": 100},
    ],
}


def read_jsonl(split: str) -> List[Example]:
    path = SHARED / "datasets" / "cais" / f"{split}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_rasa(path: Path) -> List[Example]:
    """The examples of a Rasa NLU file, read with Rasa's own loader (exact annotations)."""
    from rasa.shared.nlu.training_data.loading import load_data

    keys = ("start", "end", "value", "entity", "role")
    return [
        {"text": message.get("text"), "intent": message.get("intent"),
         "entities": [{key: entity[key] for key in keys if entity.get(key) is not None} for entity in message.get("entities") or []]}
        for message in load_data(str(path)).intent_examples
    ]


def join(first: Example, second: Example, connector: str, intent: str) -> Example:
    """One message saying `first`, the connector, then `second`, with both messages' entities."""
    shift = len(first["text"]) + len(connector)
    moved = [{**entity, "start": entity["start"] + shift, "end": entity["end"] + shift} for entity in second["entities"]]
    return {"text": first["text"] + connector + second["text"], "intent": intent, "entities": first["entities"] + moved}


def joined_messages(pool: Sequence[Example], names: Sequence[str], count: int, generator: random.Random) -> List[Example]:
    """`count` messages per joined name, each from a message of each part of `pool`, in either order."""
    made = []
    for name in names:
        parts = [[example for example in pool if example["intent"] == part] for part in name.split("+")]
        for _ in range(count):
            pair = [generator.choice(members) for members in parts]
            generator.shuffle(pair)
            made.append(join(pair[0], pair[1], generator.choice(CONNECTORS), name))
    return made


def dataset(name: str, seed: int, pairs: int, per_intent: int) -> Tuple[List[Example], List[Example]]:
    """(training examples, test messages) of one draw."""
    generator = random.Random(seed)
    if name == "bot":
        train = read_rasa(REPOSITORY / "example_bot" / "data" / "nlu.yml")
        held_out = read_rasa(REPOSITORY / "example_bot" / "tests" / "nlu_test.yml")
        return train, held_out + joined_messages(held_out, BOT_JOINED, pairs, generator)
    train_pool, test, dev = read_jsonl("train"), read_jsonl("test"), read_jsonl("dev")
    train = []
    for intent in sorted({example["intent"] for example in train_pool}):
        members = [example for example in train_pool if example["intent"] == intent]
        generator.shuffle(members)
        train += members[:per_intent]
    train += joined_messages(train, CAIS_JOINED, EXAMPLES_PER_JOINED, generator)
    return train, test + joined_messages(test + dev, CAIS_JOINED, pairs, generator)


def spans(entities: Sequence[Dict[str, Any]]) -> Set[Tuple[int, int, str]]:
    return {(entity["start"], entity["end"], entity["entity"] + (f"#{entity['role']}" if entity.get("role") else ""))
            for entity in entities}


def worker(job: Dict[str, Any]) -> Dict[str, Any]:
    """Train one system on the job's examples and score its test messages."""
    from rasa.core.agent import Agent

    from bert_intent.confidence import expected_calibration_error

    with tempfile.TemporaryDirectory(prefix="multi-intent-") as scratch:
        nlu_file = Path(scratch) / "nlu.json"
        nlu_file.write_text(json.dumps({"rasa_nlu_data": {"common_examples": job["train"]}}, ensure_ascii=False), encoding="utf-8")
        started = time.perf_counter()
        model = train_nlu_model(Path(scratch), nlu_file, job["pipeline"], job["seed"])
        seconds = time.perf_counter() - started
        agent = Agent.load(model)

        async def parse(texts: List[str]) -> List[Dict[str, Any]]:
            return [await agent.parse_message(text) for text in texts]

        known = {example["intent"] for example in job["train"]}
        test = [example for example in job["test"] if example["intent"] in known]
        parsed = asyncio.run(parse([example["text"] for example in test]))
    correct = [result["intent"]["name"] == example["intent"] for result, example in zip(parsed, test)]
    is_joined = ["+" in example["intent"] for example in test]
    found = gold = hits = 0
    for result, example, joined in zip(parsed, test, is_joined):
        if joined:
            predicted, truth = spans(result.get("entities", [])), spans(example["entities"])
            found, gold, hits = found + len(predicted), gold + len(truth), hits + len(predicted & truth)
    joined_correct = [right for right, joined in zip(correct, is_joined) if joined]
    single_correct = [right for right, joined in zip(correct, is_joined) if not joined]
    return {
        "joined": sum(joined_correct) / max(1, len(joined_correct)),
        "single": sum(single_correct) / max(1, len(single_correct)),
        "joined_span_f1": 2 * hits / max(1, found + gold),
        "ece": expected_calibration_error([result["intent"]["confidence"] or 0.0 for result in parsed], correct),
        "seconds": seconds, "joined_messages": len(joined_correct), "single_messages": len(single_correct),
    }


COLUMNS = ("joined", "single", "joined_span_f1", "ece", "seconds")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["bot", "cais"], choices=["bot", "cais"])
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--first-draw", type=int, default=1)
    parser.add_argument("--pairs", type=int, default=25, help="two-intent test messages per multi-intent")
    parser.add_argument("--per-intent", type=int, default=40, help="CAIS training examples per intent, at most")
    parser.add_argument("--systems", nargs="+", default=["ours", "diet", "before"], choices=list(PIPELINES))
    parser.add_argument("--before-ref", default="f7932b8", help="git revision of the `before` component")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if worker_or_skip(arguments.worker, worker):
        return
    with tempfile.TemporaryDirectory(prefix="multi-intent-before-") as before:
        roots = {"ours": REPOSITORY, "diet": REPOSITORY, "before": Path(before)}
        if "before" in arguments.systems:
            export_package(arguments.before_ref, before)
        print(f"{'dataset':<7} {'system':<7} {'joined':>7} {'single':>7} {'joined span F1':>14} {'ECE':>6} {'train s':>7}",
              flush=True)
        for name in arguments.datasets:
            for system in arguments.systems:
                runs = []
                for seed in range(arguments.first_draw, arguments.first_draw + arguments.draws):
                    train, test = dataset(name, seed, arguments.pairs, arguments.per_intent)
                    job = {"name": f"{name} {system} draw {seed}", "seed": seed, "pipeline": PIPELINES[system],
                           "train": train, "test": test}
                    runs.append(run_job(job, roots[system], __file__))
                    print(f"  {job['name']}: " + " ".join(f"{key} {runs[-1][key]:.3f}" for key in COLUMNS[:4])
                          + f" ({runs[-1]['joined_messages']} two-intent, {runs[-1]['single_messages']} single messages)", flush=True)
                median = {key: statistics.median(run[key] for run in runs) for key in COLUMNS}
                print(f"{name:<7} {system:<7} {median['joined']:>7.3f} {median['single']:>7.3f} "
                      f"{median['joined_span_f1']:>14.3f} {median['ece']:>6.3f} {median['seconds']:>7.0f}", flush=True)


if __name__ == "__main__":
    main()
