"""What the entity heads cost per parsed message on a CPU: the served model with and without entities.

    .venv/bin/python benchmarks/entity_latency.py [--rounds 5] [--messages 200] [--entity-types 24]

Builds the network with bert-base-chinese's architecture (random weights, 14 intents, the n-gram tables
filled at random) twice: intent-only (what a bot without entity annotations gets) and with
`--entity-types` entity types (CAIS has 24 slot types; both tag heads filled at random). Each is saved
as training saves it (int8 ONNX) and loaded with the onnx backend, then `IntentModel.predict` parses the
same Chinese messages one at a time (tokenizing, the ONNX Runtime run and entity decoding included),
the two models interleaved over rounds. Prints p50 per model (median over rounds) and their ratio.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import List

import torch
from transformers import BertConfig, BertModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bert_intent import entities  # noqa: E402
from bert_intent.checkpoints import bert_tokenizer  # noqa: E402
from bert_intent.entities import EntityType  # noqa: E402
from bert_intent.model import IntentModel  # noqa: E402
from bert_intent.network import IntentNetwork  # noqa: E402
from bert_intent.settings import validate  # noqa: E402

INTENTS = [f"intent_{index}" for index in range(14)]
MESSAGES = [
    "明天上海会下雨吗", "帮我订两张周六去杭州的高铁票", "放一首周杰伦的稻香", "早上七点半叫我起床", "你好",
    "今天有什么体育新闻", "从北京到广州的机票，下周二出发，经济舱",
]


def model(directory: Path, num_types: int) -> IntentModel:
    """A model with `num_types` entity types (0: intent-only), saved and loaded as `rasa train` and `rasa run` do."""
    types = [EntityType(f"slot_{index}") for index in range(num_types)]
    torch.manual_seed(0)
    network = IntentNetwork(BertModel(BertConfig(vocab_size=21128)), len(INTENTS), entities.tag_count(types))
    with torch.no_grad():
        network.ngrams.weights.normal_()
        network.ngrams.idf.uniform_(0, 5)
        network.familiarity.seen.bernoulli_(0.05)
        if types:
            network.tag_ngrams.weights.normal_()
    characters = sorted({character for message in MESSAGES for character in message})
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *characters]
    tokenizer = bert_tokenizer({token: index for index, token in enumerate(vocabulary)})
    IntentModel(INTENTS, validate({}), tokenizer, network, entity_types=types).save(directory)
    return IntentModel.load(directory, torch.device("cpu"), "onnx")


def p50_ms(served: IntentModel, messages: List[str]) -> float:
    times = []
    for message in messages:
        started = time.perf_counter()
        served.predict([message])
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--entity-types", type=int, default=24)
    arguments = parser.parse_args()
    messages = [MESSAGES[index % len(MESSAGES)] for index in range(arguments.messages)]
    with tempfile.TemporaryDirectory(prefix="entity-latency-") as scratch:
        served = {
            "intent-only": model(Path(scratch) / "intent-only", 0),
            f"{arguments.entity_types} entity types": model(Path(scratch) / "entities", arguments.entity_types),
        }
        results = {label: [] for label in served}
        for _ in range(arguments.rounds):
            for label, parsed in served.items():
                results[label].append(p50_ms(parsed, messages))
    medians = {label: statistics.median(values) for label, values in results.items()}
    for label, value in medians.items():
        print(f"{label:<17} p50 {value:.2f} ms per message (rounds: {', '.join(f'{v:.2f}' for v in results[label])})")
    intent_only, with_entities = medians.values()
    print(f"ratio {with_entities / intent_only:.3f} (target <= 1.15)")


if __name__ == "__main__":
    main()
