"""Parse latency of this checkout against the component at an earlier revision, side by side.

    .venv/bin/python benchmarks/latency_before.py --before-ref 31a146d [--rounds 9] [--repeats 300]

Each side builds once, with its own `bert_intent` package, the int8 ONNX network of bert-base-chinese's
architecture (random weights, `bench_inference.build_archives`). Each round then loads both, each in a
process of its own, as the component does and times `IntentModel.predict` on one medium message per
call (p50 and the fastest decile's bound, p10, over `--repeats` calls, 2 threads). The sides alternate
within every round, so a noisy minute on a shared machine weighs on both; the figures are medians over
rounds. Where the machine is noisy, p10 (what a call costs when nothing else runs) separates the sides
better than p50. Also printed: the graph's node count after
ONNX Runtime's own optimizations, the part of the served cost that a change of the network moves.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))


def worker(package_root: str, repeats: int, storage: Path) -> Dict[str, float]:
    """p50 (ms) of one predict per medium message, and the optimized graph's node count; the network is
    built in `storage` at the side's first round."""
    import onnx
    import onnxruntime
    import torch
    from bench_inference import MEDIUM, build_archives  # puts this checkout on sys.path: the side's package goes first

    sys.path.insert(0, package_root)
    from bert_intent.model import IntentModel

    assert Path(sys.modules["bert_intent"].__file__).resolve().parent == Path(package_root, "bert_intent").resolve()

    torch.set_num_threads(2)
    if not (storage / "int8").is_dir():
        build_archives(storage, "")
    model = IntentModel.load(storage / "int8", torch.device("cpu"), "onnx")
    options = onnxruntime.SessionOptions()
    options.optimized_model_filepath = str(storage / "optimized.onnx")
    onnxruntime.InferenceSession(str(storage / "int8" / "model.onnx"), options, providers=["CPUExecutionProvider"])
    nodes = len(onnx.load(options.optimized_model_filepath, load_external_data=False).graph.node)
    for text in MEDIUM * 5:
        model.predict([text])
    times = []
    for call in range(repeats):
        started = time.perf_counter()
        model.predict([MEDIUM[call % len(MEDIUM)]])
        times.append(time.perf_counter() - started)
    return {"p50_ms": statistics.median(times) * 1000, "p10_ms": statistics.quantiles(times, n=10)[0] * 1000, "nodes": nodes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before-ref", required=True, help="git revision of the `before` component")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.worker:
        print(json.dumps(worker(arguments.worker[0], arguments.repeats, Path(arguments.worker[1]))))
        return
    from few_shot import export_package

    with tempfile.TemporaryDirectory(prefix="latency-before-") as workspace:
        before_root = Path(workspace) / "package"
        before_root.mkdir()
        export_package(arguments.before_ref, str(before_root))
        roots = {"ours": str(REPOSITORY), f"before ({arguments.before_ref})": str(before_root)}
        storages = {name: Path(workspace) / f"network-{side}" for side, name in enumerate(roots)}
        results: Dict[str, list] = {name: [] for name in roots}
        for round_ in range(1, arguments.rounds + 1):
            for name, root in roots.items():
                completed = subprocess.run(
                    [sys.executable, __file__, "--before-ref", arguments.before_ref, "--repeats", str(arguments.repeats),
                     "--worker", root, str(storages[name])], capture_output=True, text=True, check=True,
                )
                results[name].append(json.loads(completed.stdout.strip().splitlines()[-1]))
                print(f"round {round_} {name}: p50 {results[name][-1]['p50_ms']:.2f} ms, p10 {results[name][-1]['p10_ms']:.2f} ms", flush=True)
        print("medium message, one predict per call, int8 ONNX, bert-base-chinese's architecture, 2 threads:")
        for name, runs in results.items():
            p50, p10 = (statistics.median(run[key] for run in runs) for key in ("p50_ms", "p10_ms"))
            rounds = ", ".join(f"{run['p50_ms']:.2f}" for run in runs)
            print(f"  {name:<24} p50 {p50:.2f} ms (rounds: {rounds}), p10 {p10:.2f} ms, "
                  f"{runs[0]['nodes']} graph nodes after ONNX Runtime's optimizations")


if __name__ == "__main__":
    main()
