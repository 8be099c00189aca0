"""Training on a GPU, without Rasa: the component against the plain pad-to-256 float32 recipe, and the
paths `rasa train --finetune` and serving take after it.

    python benchmarks/gpu_train.py [--architectures proxy bert-base] [--epochs 0] [--json results.json]

For each architecture (`proxy`: the pretrained stand-in ../shared/models/zh-bert-mini-proxy, or
$SHARED_DIR's; `bert-base`: bert-base-chinese's architecture with random weights and its tokenizer),
on the example bot's training file (entities and two-intent examples included) it measures, on the
device `device: auto` picks:
1. `ours`: `training.fine_tune` with only `model_name` set (its own epochs, batch size and precision);
2. `plain`: BertForSequenceClassification on the single-intent examples, padded to 256 tokens, batches
   of 16, float32 AdamW at 5e-5, for as many epochs as `ours` planned;
3. the trained model saved (ONNX, int8) and loaded for serving on the CPU: top-1 agreement with the
   network it was exported from, on the bot's test file;
4. `rasa train --finetune`'s path: the saved model loaded on the device with the torch backend and
   trained on with `epoch_fraction` 0.2;
5. `ours` again with batches of 64 (`batch_size: 64`), to see what the batch size costs or buys.
Intent accuracy is on the single-intent messages of example_bot/tests/nlu_test.yml. Needs no Rasa, so
it runs where only torch, transformers, onnxruntime and scikit-learn are installed.
"""

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np
import torch
import yaml

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))
sys.path.insert(0, str(REPOSITORY / "benchmarks"))

from bert_intent import parts, settings  # noqa: E402
from bert_intent.model import IntentModel  # noqa: E402
from bert_intent.training import fine_tune  # noqa: E402
from few_shot import PROXY  # noqa: E402
from train_speed import random_bert_base  # noqa: E402

ANNOTATION = re.compile(r"\[([^\]]+)\](?:\(([^)]*)\)|(\{[^}]*\}))")
Example = Tuple[str, str, List[Dict[str, Any]]]


def read_nlu(path: Path) -> List[Example]:
    """(text, intent, entities) of a Rasa NLU YAML file, read without Rasa: `[value](type)` and
    `[value]{"entity": ..., "role": ...}` annotations become Rasa's entity dicts."""
    examples = []
    for block in yaml.safe_load(path.read_text(encoding="utf-8"))["nlu"]:
        if "intent" not in block:
            continue
        for line in block["examples"].splitlines():
            if not line.strip().startswith("- "):
                continue
            text, annotations, position = "", [], 0
            raw = line.strip()[2:]
            for match in ANNOTATION.finditer(raw):
                text += raw[position:match.start()]
                described = json.loads(match.group(3)) if match.group(3) else {"entity": match.group(2).split(":")[0]}
                annotations.append({"start": len(text), "end": len(text) + len(match.group(1)), "value": match.group(1),
                                    **{key: described[key] for key in ("entity", "role", "group") if key in described}})
                text += match.group(1)
                position = match.end()
            examples.append((text + raw[position:], block["intent"], annotations))
    return examples


def synchronized_seconds(started: float, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    return round(time.perf_counter() - started, 1)


def plain_recipe(checkpoint: Path, train: List[Example], test: List[Example], epochs: int, device: torch.device) -> Dict[str, Any]:
    """The plain fine-tuning recipe #20 measures against: every training message padded to 256 tokens
    (on purpose: that is the baseline), batches of 16, float32, AdamW at 5e-5."""
    from transformers import AutoTokenizer, BertForSequenceClassification

    single = [(text, intent) for text, intent, _ in train if "+" not in intent]
    labels = sorted({intent for _, intent in single})
    index = {label: position for position, label in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(str(checkpoint))
    torch.manual_seed(0)
    network = BertForSequenceClassification.from_pretrained(str(checkpoint), num_labels=len(labels)).to(device)
    optimizer = torch.optim.AdamW(network.parameters(), lr=5e-5)
    encoded = tokenizer([text for text, _ in single], padding="max_length", truncation=True, max_length=256, return_tensors="pt")
    targets = torch.tensor([index[intent] for _, intent in single])
    started = time.perf_counter()
    network.train()
    for _ in range(epochs):
        for batch in torch.randperm(len(single)).split(16):
            loss = network(input_ids=encoded["input_ids"][batch].to(device), attention_mask=encoded["attention_mask"][batch].to(device),
                           labels=targets[batch].to(device)).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    seconds = synchronized_seconds(started, device)
    network.eval()
    known = [(text, intent) for text, intent, _ in test if intent in index]
    with torch.inference_mode():
        # Evaluation pads each message only as far as the longest in the run: the padding to 256 is the training recipe measured.
        inputs = tokenizer([text for text, _ in known], padding=True, truncation=True, max_length=256, return_tensors="pt").to(device)
        predicted = network(**inputs).logits.argmax(dim=-1).tolist()
    return {"seconds": seconds, "accuracy": round(float(np.mean([labels[p] == intent for p, (_, intent) in zip(predicted, known)])), 3)}


def measure(checkpoint: Path, train: List[Example], test: List[Example], scratch: Path, epochs: int) -> Dict[str, Any]:
    texts, intents, annotations = ([example[field] for example in train] for field in range(3))
    config = settings.validate({"model_name": str(checkpoint), "epochs": epochs})
    device = settings.resolve_device(config.device)
    test_texts, test_intents = [text for text, _, _ in test], [intent for _, intent, _ in test]
    started = time.perf_counter()
    model = fine_tune(texts, intents, config, annotations=annotations)
    ours = {"seconds": synchronized_seconds(started, device), "device": str(device),
            "precision": model.summary["precision"], "epochs": model.summary["epochs"],
            "best_epoch": model.summary.get("best_epoch"), "optimizer_steps": model.summary.get("optimizer_steps"),
            **{name: value for name, value in parts.evaluate(model, test_texts, test_intents).items() if name in ("encoder", "ngrams", "served", "skipped")}}
    served_on_device = model.confidences(test_texts)
    model.save(scratch / "saved")
    onnx_model = IntentModel.load(scratch / "saved", torch.device("cpu"), "onnx")
    agreement = float(np.mean(onnx_model.confidences(test_texts).argmax(axis=1) == served_on_device.argmax(axis=1)))
    loaded = IntentModel.load(scratch / "saved", device, "torch")
    started = time.perf_counter()
    continued = fine_tune(texts, intents, config, start_from=loaded, epoch_fraction=0.2, annotations=annotations)
    continued_seconds = synchronized_seconds(started, device)
    started = time.perf_counter()
    larger_batches = fine_tune(texts, intents, config.replace(batch_size=64), annotations=annotations)
    return {
        "ours": ours,
        "plain": plain_recipe(checkpoint, train, test, int(ours["epochs"]), device),
        "ours_batch_64": {"seconds": synchronized_seconds(started, device), "epochs": larger_batches.summary["epochs"],
                          "served": parts.evaluate(larger_batches, test_texts, test_intents)["served"]},
        "onnx_int8_cpu_agreement": round(agreement, 3),
        "continued": {"seconds": continued_seconds, "epochs": continued.summary["epochs"],
                      "served": parts.evaluate(continued, test_texts, test_intents)["served"],
                      "network_device": str(next(continued.network.parameters()).device)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architectures", nargs="+", default=["proxy", "bert-base"], choices=["proxy", "bert-base"])
    parser.add_argument("--epochs", type=int, default=0, help="0 (the default): the component's own choice")
    parser.add_argument("--json", type=Path, help="also write the results here")
    arguments = parser.parse_args()
    if not (PROXY / "config.json").is_file():
        print(f"The pretrained stand-in is not in {PROXY}: skipping (set SHARED_DIR to the shared folder).")
        return
    train = read_nlu(REPOSITORY / "example_bot" / "data" / "nlu.yml")
    test = read_nlu(REPOSITORY / "example_bot" / "tests" / "nlu_test.yml")
    device_name = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
    results: Dict[str, Any] = {"device": device_name, "torch": torch.__version__}
    for architecture in arguments.architectures:
        with tempfile.TemporaryDirectory(prefix="gpu-train-") as scratch:
            checkpoint = PROXY if architecture == "proxy" else random_bert_base(Path(scratch) / "bert-base")
            results[architecture] = measure(checkpoint, train, test, Path(scratch), arguments.epochs)
            ratio = results[architecture]["plain"]["seconds"] / max(results[architecture]["ours"]["seconds"], 1e-9)
            results[architecture]["plain_over_ours"] = round(ratio, 2)
        print(json.dumps({architecture: results[architecture]}, ensure_ascii=False), flush=True)
    if arguments.json:
        arguments.json.write_text(json.dumps(results, indent=2, ensure_ascii=False), encoding="utf-8")


if __name__ == "__main__":
    main()
