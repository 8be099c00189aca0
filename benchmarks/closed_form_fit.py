"""Time of the closed-form heads' fits on the example bot, by solver, and whether the solvers agree.

    .venv/bin/python benchmarks/closed_form_fit.py [--solvers lbfgs newton-cg] [--rounds 2]

The intent n-gram head (`NgramHead`) and the lexical tag head (`TagNgramHead`) are fitted on
example_bot/data/nlu.yml (695 examples, 15 intents, 23 tags) with bert-base-chinese's vocabulary (the
tokenizer of the pretrained stand-in ../shared/models/zh-bert-mini-proxy; without ../shared, the
character vocabulary of example_bot/config_offline.yml's BERT from scratch), once per solver and round,
in turn. Printed per solver: the median seconds of each fit, the intent accuracy of the n-gram head and
the span F1 of the tag head on example_bot/tests/nlu_test.yml, and their agreement with the first
solver (share of the same top intents and token tags).
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import torch

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))
PROXY = Path(os.environ.get("SHARED_DIR", REPOSITORY.parent / "shared")) / "models" / "zh-bert-mini-proxy"


def read(path: Path) -> Tuple[List[str], List[str], List[List[Dict[str, Any]]]]:
    from rasa.shared.nlu.training_data.loading import load_data

    messages = load_data(str(path)).intent_examples
    return [m.get("text") for m in messages], [m.get("intent") for m in messages], [m.get("entities") or [] for m in messages]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--solvers", nargs="+", default=["lbfgs", "newton-cg"])
    parser.add_argument("--rounds", type=int, default=2)
    arguments = parser.parse_args()

    from transformers import AutoTokenizer

    from bert_intent import encoding, entities, heads
    from bert_intent.checkpoints import build_from_scratch
    from bert_intent.encoding import PadWithTags
    from bert_intent.hashing import ngram_buckets

    texts, intents, annotations = read(REPOSITORY / "example_bot/data/nlu.yml")
    test_texts, test_intents, test_annotations = read(REPOSITORY / "example_bot/tests/nlu_test.yml")
    if (PROXY / "config.json").is_file():
        tokenizer, vocabulary = AutoTokenizer.from_pretrained(str(PROXY)), "bert-base-chinese's"
    else:
        tokenizer, vocabulary = build_from_scratch(texts, ["unused"], "mini", 128)[0], "the offline BERT's characters"
    labels = sorted(set(intents))
    types = encoding.entity_types_to_learn(annotations, True, True)
    known = [index for index, intent in enumerate(test_intents) if intent in labels]
    batches = []
    for split_texts, split_intents, split_annotations in ((texts, intents, annotations), (
        [test_texts[i] for i in known], [test_intents[i] for i in known], [test_annotations[i] for i in known]
    )):
        ids = [labels.index(intent) for intent in split_intents]
        examples = encoding.examples(tokenizer, split_texts, split_intents, ids, split_annotations, types, 128)[0]
        batches.append((PadWithTags(tokenizer, return_tensors="pt")(examples), ids))
    (train, train_ids), (test, test_ids) = batches
    print(f"{len(texts)} examples, {len(labels)} intents, {entities.tag_count(types)} tags, {vocabulary} vocabulary")

    original = heads.LogisticRegression
    seconds: Dict[str, Dict[str, List[float]]] = {solver: {"ngrams": [], "tags": []} for solver in arguments.solvers}
    predictions: Dict[str, Tuple[torch.Tensor, torch.Tensor]] = {}
    for _ in range(arguments.rounds):
        for solver in arguments.solvers:
            heads.LogisticRegression = lambda **kwargs: original(**{**kwargs, "solver": solver})  # noqa: B023
            ngram_head, tag_head = heads.NgramHead(len(labels)), heads.TagNgramHead(entities.tag_count(types))
            started = time.perf_counter()
            ngram_head.fit(*ngram_buckets(train["input_ids"], train["attention_mask"]), train_ids, balanced=True)
            seconds[solver]["ngrams"].append(time.perf_counter() - started)
            started = time.perf_counter()
            tag_head.fit(train["input_ids"], train["attention_mask"], train["entity_tags"], entities.IGNORED)
            seconds[solver]["tags"].append(time.perf_counter() - started)
            with torch.no_grad():
                intent_predictions = ngram_head(*ngram_buckets(test["input_ids"], test["attention_mask"])).argmax(-1)
                tag_predictions = tag_head(test["input_ids"], test["attention_mask"]).argmax(-1)
            predictions[solver] = intent_predictions, tag_predictions
    heads.LogisticRegression = original

    tagged = test["entity_tags"] != entities.IGNORED
    gold_tags = [row[keep].tolist() for row, keep in zip(test["entity_tags"], tagged)]
    first = arguments.solvers[0]
    print(f"{'solver':<10} {'n-grams s':>9} {'tags s':>7} {'intent acc':>10} {'span F1':>8} {'same intents':>12} {'same tags':>9}")
    for solver in arguments.solvers:
        intent_predictions, tag_predictions = predictions[solver]
        accuracy = (intent_predictions == torch.tensor(test_ids)).float().mean().item()
        span_f1 = entities.span_f1(gold_tags, [row[keep].tolist() for row, keep in zip(tag_predictions, tagged)])
        same_intents = (intent_predictions == predictions[first][0]).float().mean().item()
        same_tags = (tag_predictions[tagged] == predictions[first][1][tagged]).float().mean().item()
        print(f"{solver:<10} {statistics.median(seconds[solver]['ngrams']):>9.1f} {statistics.median(seconds[solver]['tags']):>7.1f} "
              f"{accuracy:>10.3f} {span_f1:>8.3f} {same_intents:>12.3f} {same_tags:>9.3f}")


if __name__ == "__main__":
    main()
