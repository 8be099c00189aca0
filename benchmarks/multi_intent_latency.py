"""What multi-intents cost per message: `IntentModel.predict` with and without joined intents, side by side.

    .venv/bin/python benchmarks/multi_intent_latency.py [--repeats 30] [--rounds 3]

The network is bert-base-chinese's architecture with random weights (the same compute as the real
checkpoint) and a tag head for five entity types, saved as the component saves it (int8 ONNX) and
served with ONNX Runtime on the CPU. The same loaded model is timed on one message per call, for short,
medium and long messages: with no joined intents (a bot without multi-intents); with the example bot's
four, each message read as one request (its up to 2 x 32 parts scored, the decision set to "one"); and
read as two (the decision set to "two": its entities are also read from its two parts alone). Figures
are p50 milliseconds, medians over --rounds alternating rounds, with the ratios to "no multi-intents"
taken within each round.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_inference import LENGTHS, build_archives  # noqa: E402

ENTITIES = ("city", "date", "singer", "song", "time")
# Decisions so sure of themselves that every message with a split point is read as one request, or as two.
DECISION_BETAS = {"as one": -30.0, "as two": 30.0}
JOINED = [("book_flight+ask_weather", ("book_flight", "ask_weather")), ("book_train+ask_weather", ("book_train", "ask_weather")),
          ("set_alarm+ask_weather", ("set_alarm", "ask_weather")), ("play_music+set_alarm", ("play_music", "set_alarm"))]


def p50_ms(model, texts: List[str], repeats: int) -> float:  # type: ignore[no-untyped-def]
    timings = []
    for index in range(repeats):
        started = time.perf_counter()
        model.predict([texts[index % len(texts)]])
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    import torch

    from bert_intent.entities import EntityType
    from bert_intent.model import IntentModel
    from bert_intent.multi_intent import Decision, JoinedIntent

    with tempfile.TemporaryDirectory(prefix="multi-intent-latency-") as storage:
        build_archives(Path(storage), "", [EntityType(name) for name in ENTITIES])
        model = IntentModel.load(Path(storage) / "int8", torch.device("cpu"), "onnx")
    joined = [JoinedIntent(name, parts) for name, parts in JOINED]
    rounds: Dict[str, List[Dict[str, float]]] = {length: [] for length in LENGTHS}
    for _ in range(arguments.rounds):
        for length, texts in LENGTHS.items():
            model.joined = []
            measured = {"without": p50_ms(model, texts, arguments.repeats)}
            model.joined = joined
            for name, beta in DECISION_BETAS.items():
                model.decision = Decision(beta=beta)
                measured[name] = p50_ms(model, texts, arguments.repeats)
            rounds[length].append({**measured, **{f"{name} ratio": measured[name] / measured["without"] for name in DECISION_BETAS}})
    print(f"{'message':<8} {'no multi-intents ms':>20} {'4, read as one ms':>18} {'ratio':>6} {'4, read as two ms':>18} {'ratio':>6}")
    for length, rows in rounds.items():
        median = {key: statistics.median(row[key] for row in rows) for key in rows[0]}
        print(f"{length:<8} {median['without']:>20.1f} {median['as one']:>18.1f} {median['as one ratio']:>6.1f}"
              f" {median['as two']:>18.1f} {median['as two ratio']:>6.1f}")


if __name__ == "__main__":
    main()
