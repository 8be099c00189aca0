"""Does the combination follow the encoder where only the encoder can tell? A word-order task.

    .venv/bin/python benchmarks/encoder_decides.py [--seeds 3] [--train 400] [--options KEY=VALUE ...]

The pretrained stand-in is weaker than the n-gram head on every real data set measured, so those
benchmarks cannot show what happens with a strong encoder such as bert-base-chinese. Here the labels
are invisible to n-grams: each message is random filler characters with two marker characters in it,
at least five characters apart (beyond a 4-gram's reach), and the intent says which pair of markers
it has and which of the two comes first (4 intents). Every message of a pair has the same characters,
so the n-gram head can tell the pair but not the order (about 50 %); the fine-tuned encoder can learn
the order. The served model must then be as good as the encoder alone. Trained in-process with only
`model_name` set (Rasa-free `fine_tune`; `--options` adds settings, as in `few_shot.py`), medians
over seeded draws. The parts are read from the torch network as trained; `int8` is the served accuracy
of the saved model as Rasa serves it on a CPU (int8 ONNX), and `agree` the share of test messages whose
top intent it keeps, which shows how far quantization moves a model that follows its encoder.
"""

import argparse
import logging
import random
import statistics
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from few_shot import PROXY, parse_options  # noqa: E402

FILLER = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可也你"
PAIRS = (("猫", "狗"), ("红", "蓝"))

if TYPE_CHECKING:
    from bert_intent.model import IntentModel


def messages(count: int, seed: int) -> List[Tuple[str, str]]:
    """`count` messages with their intents (`<first>_before_<second>`), balanced over the 4 intents."""
    generator = random.Random(seed)
    examples = []
    for index in range(count):
        first, second = PAIRS[index % 2]
        if (index // 2) % 2:
            first, second = second, first
        filler = lambda low, high: "".join(generator.choice(FILLER) for _ in range(generator.randint(low, high)))  # noqa: E731
        examples.append((filler(1, 4) + first + filler(5, 8) + second + filler(1, 4), f"{first}_before_{second}"))
    return examples


def as_served(model: "IntentModel", texts: Sequence[str], intents: Sequence[str]) -> Dict[str, float]:
    """The served accuracy of `model` saved and loaded as Rasa serves it on a CPU (ONNX Runtime, int8
    weights by default), and the share of `texts` whose top intent the torch model gives too."""
    import numpy as np
    import torch

    from bert_intent.model import IntentModel

    with tempfile.TemporaryDirectory() as directory:
        model.save(Path(directory))
        loaded = IntentModel.load(Path(directory), torch.device("cpu"), "onnx")
        served = loaded.confidences(texts).argmax(axis=1)
    names = np.array(loaded.intent_names)
    return {
        "int8": float(np.mean(names[served] == np.array(intents))),
        "agree": float(np.mean(served == model.confidences(texts).argmax(axis=1))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--train", type=int, default=400, help="training messages (the test has 400 others)")
    parser.add_argument("--options", nargs="*", default=[], help="KEY=VALUE settings beside model_name")
    arguments = parser.parse_args()
    if not (PROXY / "config.json").is_file():
        print(f"The proxy checkpoint is not in {PROXY}: skipping (set SHARED_DIR to the shared folder).")
        return
    logging.basicConfig(level=logging.WARNING)
    from bert_intent import parts, settings
    from bert_intent.training import fine_tune

    options = parse_options(arguments.options)
    rows = []
    for seed in range(1, arguments.seeds + 1):
        train, test = messages(arguments.train, seed), messages(400, 1000 + seed)
        model = fine_tune(*zip(*train), settings.validate({"model_name": str(PROXY), "random_seed": seed, **options}))
        result = {**parts.evaluate(model, *zip(*test)), **as_served(model, *zip(*test))}
        rows.append(result)
        print(f"seed {seed}: encoder {result['encoder']:.3f}, n-grams {result['ngrams']:.3f}, served {result['served']:.3f}, "
              f"int8 {result['int8']:.3f} (agree {result['agree']:.3f}); "
              f"weights encoder {result['intent_weights']['encoder']:.2f}, n-grams {result['intent_weights']['ngrams']:.2f}; "
              f"best epoch {model.summary.get('best_epoch')} of {model.summary['epochs']}", flush=True)
    median = {part: statistics.median(row[part] for row in rows) for part in ("encoder", "ngrams", "served", "int8", "agree")}
    weights = {part: statistics.median(row["intent_weights"][part] for row in rows) for part in ("encoder", "ngrams")}
    print(f"median over {len(rows)} seeds: encoder {median['encoder']:.3f}, n-grams {median['ngrams']:.3f}, "
          f"served {median['served']:.3f}, int8 {median['int8']:.3f} (agree {median['agree']:.3f}); weights encoder {weights['encoder']:.2f}, n-grams {weights['ngrams']:.2f}")


if __name__ == "__main__":
    main()
