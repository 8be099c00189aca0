"""What the open-world part of the network (familiarity and calibration) costs per message on a CPU.

    .venv/bin/python benchmarks/open_world_cost.py [--rounds 3] [--messages 200]

Builds IntentNetwork with bert-base-chinese's architecture (random weights, 14 intents, the n-gram and
familiarity tables filled at random), exports it to int8 ONNX as training does, and again with the
familiarity replaced by a constant 1 (the network without it), then times one ONNX Runtime run per
message of the same Chinese messages on both, interleaved over rounds; prints p50 per model and the ratio.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import List

import numpy as np
import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bert_intent import onnx_network  # noqa: E402
from bert_intent.checkpoints import bert_tokenizer  # noqa: E402
from bert_intent.network import IntentNetwork  # noqa: E402

INTENTS = 14
MESSAGES = ["明天上海会下雨吗", "帮我订一张去北京的机票", "放一首周杰伦的歌", "早上七点叫我起床", "你好", "今天有什么新闻"]


class AlwaysFamiliar(torch.nn.Module):
    """Familiarity 1 to every intent: the network as it would be without the familiarity table."""

    def forward(self, buckets: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return torch.ones(buckets.shape[0], INTENTS)


def network(with_familiarity: bool) -> IntentNetwork:
    torch.manual_seed(0)
    model = IntentNetwork(BertModel(BertConfig(vocab_size=21128)), INTENTS)  # bert-base-chinese's shape
    with torch.no_grad():
        model.ngrams.weights.normal_()
        model.ngrams.idf.uniform_(0, 5)
        model.familiarity.seen.bernoulli_(0.05)
    if not with_familiarity:
        model.familiarity = AlwaysFamiliar()  # its table is not in the graph, nor among the exported parameters
    return model.eval()


def tokenizer() -> BertTokenizerFast:
    characters = sorted({character for message in MESSAGES for character in message})
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *characters]
    return bert_tokenizer({token: index for index, token in enumerate(vocabulary)})


def p50_ms(session: object, inputs: List[dict]) -> float:
    times = []
    for feed in inputs:
        started = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=200)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="open-world-cost-") as scratch:
        directory = Path(scratch)
        encode = tokenizer()
        names = ["input_ids", "attention_mask", "token_type_ids"]
        sessions = {}
        for label, with_familiarity in (("with familiarity", True), ("without", False)):
            path = directory / f"{with_familiarity}.onnx"
            onnx_network.export(network(with_familiarity), names, path, quantize=True)
            sessions[label] = onnx_network.session(path, None)
        inputs = []
        for index in range(arguments.messages):
            encoded = encode([MESSAGES[index % len(MESSAGES)]], return_tensors="np")
            feed = {name: values.astype(np.int64) for name, values in encoded.items()}
            inputs.append({**feed, onnx_network.PART_MASK: feed["attention_mask"][:, None, :]})  # the whole message
        results = {label: [] for label in sessions}
        for _ in range(arguments.rounds):
            for label, session in sessions.items():
                results[label].append(p50_ms(session, inputs))
        medians = {label: statistics.median(values) for label, values in results.items()}
        for label, value in medians.items():
            print(f"{label:<17} p50 {value:.2f} ms per message (rounds: {', '.join(f'{v:.2f}' for v in results[label])})")
        print(f"ratio {medians['with familiarity'] / medians['without']:.3f}")


if __name__ == "__main__":
    main()
