"""Inference speed, memory, load time, archive size and int8-vs-fp32 agreement, side by side.

    .venv/bin/python benchmarks/bench_inference.py [--checkpoint DIR] [--repeats 100] [--rounds 3] [--json FILE]

The network is bert-base-chinese's architecture (12 layers, hidden 768, 21 128-token vocabulary)
with random weights, or the checkpoint in --checkpoint: the same compute either way. Every variant
runs in its own process, one after the other, on the same messages (short, medium, long Chinese
utterances); its peak RSS is that process's. All variants are measured in turn --rounds times, and
each figure is the median over the rounds, so that a noisy minute on a shared machine cannot favour
one variant; the speed-up over (b) is taken within each round, then the median. Variants:

  (a) pad-256 torch fp32   the blog recipe: every message padded to 256 tokens, PyTorch eager
  (b) torch fp32           PyTorch eager, batches padded to their longest message
  (c) component default    BertIntentClassifier loaded from its archive, `inference_backend: auto` (CPU: ONNX Runtime int8)
  (d) component onnx fp32  `quantize: false`
  (e) component torch      `inference_backend: torch` on the default (int8) archive

Latency is of one `process` call on one message (p50/p95 over --repeats calls per length), throughput
of `process` on batches of 32 mixed messages; rss_model_mb is the peak RSS beyond what the imports
(Rasa, torch, the component) took. Agreement: share of held-out messages whose top intent
under int8 equals fp32's, for the random network and for the example bot's offline model trained
here (a small BERT from scratch, example_bot/config_offline.yml's settings) on example_bot's data.
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

REPOSITORY = Path(__file__).resolve().parents[1]
SHORT = ["你好", "谢谢", "再见啦", "放首歌", "几点了"]
MEDIUM = ["帮我订一张明天去上海的机票", "明天北京会不会下雨啊", "设一个明早七点的闹钟叫我起床", "最近有什么好看的电影推荐吗"]
LONG = [
    "我下周三要去杭州出差，帮我看看有没有上午九点左右从北京南站出发的高铁，最好是二等座靠窗的位置，谢谢",
    "周末想和朋友一起去看电影，能不能帮我查一下附近电影院周六晚上七点以后的场次，顺便订两张中间位置的票",
    "今天早上的新闻里说南方要降温了，帮我查一下广州和深圳这几天的天气，我要决定带不带外套出门",
]
LENGTHS = {"short": SHORT, "medium": MEDIUM, "long": LONG}
BATCH = (SHORT + MEDIUM + LONG) * 3  # 36 messages, the first 32 form a batch
INTENTS = ["affirm", "ask_movie", "ask_news", "ask_weather", "book_cinema_ticket", "book_flight", "book_train",
           "deny", "goodbye", "greet", "out_of_scope", "play_music", "set_alarm", "thanks"]
BERT_BASE_CHINESE = dict(vocab_size=21128, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                         intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2)
VARIANTS = {
    "(a) pad-256 torch fp32": ("float32", {"inference_backend": "torch"}),
    "(b) torch fp32": ("float32", {"inference_backend": "torch"}),
    "(c) component default (onnx int8)": ("int8", {}),
    "(d) component onnx fp32": ("float32", {"inference_backend": "onnx"}),
    "(e) component torch (int8 archive)": ("int8", {"inference_backend": "torch"}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="a local BERT checkpoint directory instead of random weights")
    parser.add_argument("--repeats", type=int, default=100, help="single-message calls per length (default 100)")
    parser.add_argument("--rounds", type=int, default=3, help="times every variant is measured, in turn (default 3)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--storage", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.worker:
        print(json.dumps(measure(arguments.worker, arguments.storage, arguments.repeats)))
        return
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as scratch:
        storage = Path(scratch)
        sizes = build_archives(storage, arguments.checkpoint)
        rounds = [measure_round(storage, arguments.repeats) for _ in range(arguments.rounds)]
        results = {name: {key: statistics.median(round_[name][key] for round_ in rounds) for key in rounds[0][name]}
                   for name in VARIANTS}
        random_agreement = top1_agreement(storage / "float32", storage / "int8")
        bot = trained_bot(storage)
    report = {"rounds": arguments.rounds, "archive_mb": sizes, "variants": results, "random_network_top1_agreement": random_agreement,
              "example_bot": bot}
    print(markdown(report))
    if arguments.json:
        arguments.json.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")


def build_archives(storage: Path, checkpoint: str, entity_types: Sequence[Any] = ()) -> Dict[str, float]:
    """Save the network as the component does, int8 and fp32 (with a tag head for `entity_types`);
    return each Rasa archive's size (MB)."""
    import torch
    from transformers import BertConfig, BertModel

    from bert_intent import settings
    from bert_intent.checkpoints import bert_tokenizer, load_pretrained
    from bert_intent.entities import tag_count
    from bert_intent.model import IntentModel
    from bert_intent.network import IntentNetwork

    if checkpoint:
        tokenizer, network = load_pretrained(checkpoint, INTENTS, tag_count(entity_types))
    else:
        torch.manual_seed(0)
        vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [chr(code) for code in range(0x4E00, 0x4E00 + 21123)]
        tokenizer = bert_tokenizer({token: index for index, token in enumerate(vocabulary)})
        network = IntentNetwork(BertModel(BertConfig(**BERT_BASE_CHINESE)), len(INTENTS), tag_count(entity_types))
    sizes = {}
    for name, quantize in (("int8", True), ("float32", False)):
        model = IntentModel(INTENTS, settings.validate({"quantize": quantize}), tokenizer, network, entity_types=entity_types)
        model.save(storage / name)
        archive = storage / f"{name}.tar.gz"
        with tarfile.open(archive, "w:gz") as packed:
            packed.add(storage / name, arcname=name)
        sizes[name] = round(archive.stat().st_size / 1e6, 1)
    return sizes


def measure_round(storage: Path, repeats: int) -> Dict[str, Dict[str, Any]]:
    """Every variant once, each with its medium-message speed-up over (b) in this round."""
    results = {name: run_worker(name, storage, repeats) for name in VARIANTS}
    baseline = results["(b) torch fp32"]["medium_p50_ms"]
    for result in results.values():
        result["medium_speedup_vs_b"] = round(baseline / result["medium_p50_ms"], 2)
    return results


def run_worker(name: str, storage: Path, repeats: int) -> Dict[str, Any]:
    print(f"measuring {name} ...", file=sys.stderr)
    command = [sys.executable, __file__, "--worker", name, "--storage", str(storage), "--repeats", str(repeats)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def measure(name: str, storage: Path, repeats: int) -> Dict[str, Any]:
    """In a fresh process: load the variant, then time single messages and batches. Every variant
    imports the same modules (Rasa, torch, the component) before the clock starts."""
    import torch  # noqa: F401
    from rasa.shared.nlu.training_data.message import Message  # noqa: F401

    from bert_intent.component import BertIntentClassifier  # noqa: F401

    rss_after_imports = peak_rss_mb()
    started = time.perf_counter()
    predict = load_variant(name, storage)
    predict(["帮我订一张明天去上海的机票"])
    result: Dict[str, Any] = {"load_to_first_prediction_s": round(time.perf_counter() - started, 2)}
    slow = name.startswith("(a)")
    for length, messages in LENGTHS.items():
        times = []
        for index in range(repeats // 4 if slow else repeats):
            begin = time.perf_counter()
            predict([messages[index % len(messages)]])
            times.append((time.perf_counter() - begin) * 1000)
        times.sort()
        result[f"{length}_p50_ms"] = round(statistics.median(times), 2)
        result[f"{length}_p95_ms"] = round(times[int(0.95 * (len(times) - 1))], 2)
    batch_times = []
    for _ in range(3 if slow else 10):
        begin = time.perf_counter()
        predict(BATCH[:32])
        batch_times.append(time.perf_counter() - begin)
    result["batch32_messages_per_s"] = round(32 / statistics.median(batch_times), 1)
    result["peak_rss_mb"] = peak_rss_mb()
    result["rss_model_mb"] = round(result["peak_rss_mb"] - rss_after_imports, 1)
    return result


def peak_rss_mb() -> float:
    """This process's peak RSS. Linux's ru_maxrss survives exec (it would report the parent's), so
    VmHWM is read where /proc has it."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def load_variant(name: str, storage: Path):  # type: ignore[no-untyped-def]
    """A function from a list of texts to predictions, for variant `name`."""
    archive, config = VARIANTS[name]
    if name.startswith(("(a)", "(b)")):
        import torch

        from bert_intent.encoding import tokenize
        from bert_intent.model import IntentModel

        model = IntentModel.load(storage / archive, torch.device("cpu"), "torch")
        if name.startswith("(b)"):
            return model.confidences

        def padded_to_256(texts: List[str]) -> Any:
            inputs = tokenize(model.tokenizer, texts, 256, return_tensors="pt", padding=True, offsets=False)
            for name in ("input_ids", "token_type_ids", "attention_mask"):  # the token columns, with zeros
                inputs[name] = torch.nn.functional.pad(inputs[name], (0, 256 - inputs[name].shape[1]))
            with torch.inference_mode():
                return model.network(**inputs).confidences.numpy()

        return padded_to_256
    component = load_component(storage / archive, config)
    from rasa.shared.nlu.training_data.message import Message

    return lambda texts: component.process([Message(data={"text": text}) for text in texts])


def load_component(model_dir: Path, config: Dict[str, Any]):  # type: ignore[no-untyped-def]
    """BertIntentClassifier.load from a Rasa model storage holding `model_dir`, as `rasa run` loads it."""
    import shutil

    from rasa.engine.graph import ExecutionContext, GraphSchema
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource

    from bert_intent.component import BertIntentClassifier

    resource = Resource("bert_intent")
    storage = LocalModelStorage(Path(tempfile.mkdtemp(prefix="bench-storage-")))
    with storage.write_to(resource) as directory:
        shutil.copytree(model_dir, directory, dirs_exist_ok=True)
    return BertIntentClassifier.load(
        {**BertIntentClassifier.get_default_config(), **config}, storage, resource, ExecutionContext(GraphSchema({}))
    )


def top1_agreement(float32: Path, int8: Path) -> float:
    """Share of example_bot's held-out messages whose top intent is the same under int8 and fp32."""
    reference, quantized = (predictions(directory, backend) for directory, backend in ((float32, "torch"), (int8, "onnx")))
    return round(sum(a == b for a, b in zip(reference, quantized)) / len(reference), 4)


def predictions(directory: Path, backend: str) -> List[str]:
    import torch

    from bert_intent.model import IntentModel

    model = IntentModel.load(directory, torch.device("cpu"), backend)
    texts = [text for text, _ in held_out()]
    return [model.labels[index] for index in model.confidences(texts).argmax(axis=1)]


def held_out() -> List[Tuple[str, str]]:
    from rasa.shared.nlu.training_data.loading import load_data

    examples = load_data(str(REPOSITORY / "example_bot/tests/nlu_test.yml")).intent_examples
    return [(message.get("text"), message.get("intent")) for message in examples]


def trained_bot(storage: Path) -> Dict[str, float]:
    """Train example_bot's offline model on its data, save it int8 and fp32, and score both on the
    held-out set: accuracy of each and their top-1 agreement."""
    import yaml
    from rasa.shared.nlu.training_data.loading import load_data

    from bert_intent import settings
    from bert_intent.model import IntentModel
    from bert_intent.training import fine_tune

    print("training the example bot's offline model ...", file=sys.stderr)
    pipeline = yaml.safe_load((REPOSITORY / "example_bot/config_offline.yml").read_text(encoding="utf-8"))["pipeline"]
    config = {key: value for key, value in pipeline[0].items() if key != "name"}
    examples = load_data(str(REPOSITORY / "example_bot/data/nlu.yml")).intent_examples
    model = fine_tune([m.get("text") for m in examples], [m.get("intent") for m in examples],
                      settings.validate({**config, "device": "cpu"}))
    for name, quantize in (("bot_int8", True), ("bot_float32", False)):
        IntentModel(model.labels, model.settings.replace(quantize=quantize), model.tokenizer, model.network,
                    calibration=model.calibration, combinations=model.combinations).save(storage / name)
    expected = [intent for _, intent in held_out()]
    accuracy = {
        f"held_out_accuracy_{name}": round(sum(a == b for a, b in zip(predictions(storage / f"bot_{name}", backend), expected)) / len(expected), 4)
        for name, backend in (("float32", "torch"), ("int8", "onnx"))
    }
    return {"top1_agreement": top1_agreement(storage / "bot_float32", storage / "bot_int8"), **accuracy}


def markdown(report: Dict[str, Any]) -> str:
    variants = report["variants"]
    columns = ["short_p50_ms", "medium_p50_ms", "medium_p95_ms", "long_p50_ms", "batch32_messages_per_s",
               "peak_rss_mb", "rss_model_mb", "load_to_first_prediction_s"]
    lines = [f"Medians over {report['rounds']} rounds.", "",
             "| variant | " + " | ".join(columns) + " | medium p50 speed-up vs (b) |", "|---" * (len(columns) + 2) + "|"]
    for name, result in variants.items():
        lines.append(f"| {name} | " + " | ".join(str(result[column]) for column in columns)
                     + f" | {result['medium_speedup_vs_b']:.1f}x |")
    sizes = report["archive_mb"]
    lines.append("")
    lines.append(f"Model archive (tar.gz): int8 {sizes['int8']} MB, fp32 {sizes['float32']} MB "
                 f"({sizes['int8'] / sizes['float32']:.0%} of fp32).")
    bot = report["example_bot"]
    lines.append(f"int8 vs fp32 top-1 agreement on example_bot/tests/nlu_test.yml ({len(held_out())} messages): "
                 f"random bert-base network {report['random_network_top1_agreement']:.1%}; example bot's trained "
                 f"offline model {bot['top1_agreement']:.1%} (held-out accuracy fp32 {bot['held_out_accuracy_float32']:.3f}, "
                 f"int8 {bot['held_out_accuracy_int8']:.3f}).")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
