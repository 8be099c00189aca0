"""What multi-intents cost per message: `IntentModel.predict` with and without joined intents, side by side.

    .venv/bin/python benchmarks/multi_intent_latency.py [--repeats 30] [--rounds 3]

The network is bert-base-chinese's architecture with random weights (the same compute as the real
checkpoint), saved as the component saves it (int8 ONNX) and served with ONNX Runtime on the CPU. The
same loaded model is timed on one message per call, for short, medium and long messages, first with no
joined intents (a bot without multi-intents), then with the example bot's four: each message is then
also classified as up to 2 x 32 parts. Figures are p50 milliseconds, medians over --rounds alternating
rounds, with the ratio taken within each round.
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

    from bert_intent.model import IntentModel
    from bert_intent.multi_intent import JoinedIntent

    with tempfile.TemporaryDirectory(prefix="multi-intent-latency-") as storage:
        build_archives(Path(storage), "")
        model = IntentModel.load(Path(storage) / "int8", torch.device("cpu"), "onnx")
    joined = [JoinedIntent(name, parts) for name, parts in JOINED]
    rounds: Dict[str, List[Dict[str, float]]] = {length: [] for length in LENGTHS}
    for _ in range(arguments.rounds):
        for length, texts in LENGTHS.items():
            model.joined = []
            without = p50_ms(model, texts, arguments.repeats)
            model.joined = joined
            with_joined = p50_ms(model, texts, arguments.repeats)
            rounds[length].append({"without": without, "with": with_joined, "ratio": with_joined / without})
    print(f"{'message':<8} {'no multi-intents ms':>20} {'4 multi-intents ms':>19} {'ratio':>6}")
    for length, measured in rounds.items():
        median = {key: statistics.median(row[key] for row in measured) for key in ("without", "with", "ratio")}
        print(f"{length:<8} {median['without']:>20.1f} {median['with']:>19.1f} {median['ratio']:>6.1f}")


if __name__ == "__main__":
    main()
