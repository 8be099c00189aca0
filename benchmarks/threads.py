"""Parse latency and training step time with as many threads as cores, and with more threads than cores.

    .venv/bin/python benchmarks/threads.py [--rounds 3] [--repeats 30] [--steps 3]

A container limited to a few CPUs on a large host sees every core of the host; ONNX Runtime and torch
sized by them run more threads than the container's CPU time allows. `settings.usable_cores` caps both
at the container's quota (cgroup). This machine cannot set a quota, so the script shows the part of
the cost it can, with bert-base-chinese's architecture (random weights) and as many threads as this
process has cores, then 4 and 16 times as many: the int8 ONNX network (as `bench_inference.py` builds
it), one `predict` per medium message, interleaved over rounds (p50 and p95); and one torch training
step (forward, backward, AdamW) on a batch of 16 messages of 24 tokens (median of `--steps` after one
warm-up). Under a real quota the surplus threads are also throttled, which this cannot show.
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import BERT_BASE_CHINESE, build_archives  # noqa: E402
from transformers import BertConfig, BertForSequenceClassification  # noqa: E402

from bert_intent import onnx_network  # noqa: E402
from bert_intent.model import IntentModel  # noqa: E402
from bert_intent.model_files import NETWORK_FILE  # noqa: E402
from bert_intent.settings import usable_cores  # noqa: E402

MESSAGES = ["明天上海会下雨吗，要不要带伞", "帮我订一张后天去北京的机票", "放一首周杰伦的稻香给我听", "明天早上七点叫我起床好吗"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=30, help="messages timed per thread count and round")
    parser.add_argument("--steps", type=int, default=3, help="training steps timed per thread count")
    arguments = parser.parse_args()
    cores = usable_cores()
    counts = [cores, 4 * cores, 16 * cores]
    with tempfile.TemporaryDirectory(prefix="bert-intent-threads-") as storage:
        build_archives(Path(storage), "")
        directory = Path(storage) / "int8"
        model = IntentModel.load(directory, torch.device("cpu"), "onnx")
        sessions = {count: onnx_network.session(directory / NETWORK_FILE, count) for count in counts}
        times: Dict[int, List[float]] = {count: [] for count in counts}
        for _ in range(arguments.rounds):
            for count in counts:
                model.session = sessions[count]
                model.confidences(MESSAGES[:1])  # warm-up
                for repeat in range(arguments.repeats):
                    started = time.perf_counter()
                    model.confidences([MESSAGES[repeat % len(MESSAGES)]])
                    times[count].append(1000 * (time.perf_counter() - started))
    print(f"{cores} usable cores; one predict per medium message, {arguments.rounds} rounds of {arguments.repeats}:")
    for count in counts:
        ordered = sorted(times[count])
        print(f"  {count:>3} ONNX Runtime threads: p50 {statistics.median(ordered):.1f} ms, p95 {ordered[int(0.95 * (len(ordered) - 1))]:.1f} ms")
    print(f"One training step, batch of 16 x 24 tokens, median of {arguments.steps}:")
    for count in counts:
        print(f"  {count:>3} torch threads: {training_step_seconds(count, arguments.steps):.2f} s")


def training_step_seconds(threads: int, steps: int) -> float:
    """Median time of a training step of bert-base's architecture with `threads` torch threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        network = BertForSequenceClassification(BertConfig(**BERT_BASE_CHINESE, num_labels=14))
        optimizer = torch.optim.AdamW(network.parameters(), lr=3e-5)
        input_ids, labels = torch.randint(100, 21000, (16, 24)), torch.randint(0, 14, (16,))
        times = []
        for _ in range(steps + 1):
            started = time.perf_counter()
            network(input_ids=input_ids, labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            times.append(time.perf_counter() - started)
        return statistics.median(times[1:])
    finally:
        torch.set_num_threads(before)


if __name__ == "__main__":
    main()
