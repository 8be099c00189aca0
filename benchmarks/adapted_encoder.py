"""An encoder stronger than the stand-in on CAIS: the stand-in fine-tuned on all of CAIS's training intents.

    .venv/bin/python benchmarks/adapted_encoder.py OUTPUT_DIR [--epochs 3]
    .venv/bin/python benchmarks/few_shot.py --datasets cais --k 10 20 50 --draws 5 \\
        --systems defaults options --options model_name=OUTPUT_DIR

bert-base-chinese cannot be downloaded here, and the stand-in's encoder loses to the n-gram head on every
data set measured, so the few-shot rows only show a weak encoder. This script builds one that already
separates CAIS's intents: the stand-in with a classification head, fine-tuned with transformers' Trainer
on every CAIS training example, saved as a plain BERT checkpoint (the body without the head, with the
stand-in's tokenizer) that `model_name` loads like any other. It prints its own accuracy on CAIS's test
split. It has seen every training example with its label, the few-shot draws included, so it stands
for an encoder that knows the domain, not for any real checkpoint. Without ../shared (or $SHARED_DIR)
the script says so and exits.
"""

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
from few_shot import PROXY, SHARED, Examples, read_cais  # noqa: E402

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

# Copied as they are: transformers 5's `save_pretrained` leaves out vocab.txt, which the stand-in has.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")


def encoded(tokenizer: "PreTrainedTokenizerBase", examples: Examples, label_ids: Dict[str, int]) -> List[Dict[str, object]]:
    """Trainer's rows: the tokenized text and its label id."""
    rows = tokenizer([text for text, _ in examples], truncation=True, max_length=64)
    return [
        {"input_ids": ids, "attention_mask": mask, "labels": label_ids[intent]}
        for ids, mask, (_, intent) in zip(rows["input_ids"], rows["attention_mask"], examples)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, nargs="?", help="where the checkpoint is written (a new folder)")
    parser.add_argument("--epochs", type=float, default=3.0)
    arguments = parser.parse_args()
    if not (SHARED / "datasets" / "cais" / "train.csv").is_file() or not (PROXY / "config.json").is_file():
        print(f"CAIS or the stand-in is not in {SHARED}: skipping (set SHARED_DIR to the shared folder).")
        return
    if arguments.output is None or arguments.output.exists():
        parser.error("give OUTPUT_DIR, a folder that does not exist yet")
    import numpy as np
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments)

    train, test = read_cais("train"), read_cais("test")
    label_ids = {intent: index for index, intent in enumerate(sorted({intent for _, intent in train}))}
    test = [(text, intent) for text, intent in test if intent in label_ids]
    tokenizer = AutoTokenizer.from_pretrained(PROXY)
    model = AutoModelForSequenceClassification.from_pretrained(PROXY, num_labels=len(label_ids))
    with tempfile.TemporaryDirectory() as scratch:
        trainer = Trainer(
            model=model,
            args=TrainingArguments(output_dir=scratch, num_train_epochs=arguments.epochs, learning_rate=1e-4,
                                   per_device_train_batch_size=32, per_device_eval_batch_size=64, save_strategy="no",
                                   report_to="none", seed=0, logging_strategy="epoch"),
            train_dataset=encoded(tokenizer, train, label_ids),
            data_collator=DataCollatorWithPadding(tokenizer),
        )
        trainer.train()
        predictions = trainer.predict(encoded(tokenizer, test, label_ids))
    accuracy = float(np.mean(predictions.predictions.argmax(axis=-1) == predictions.label_ids))
    model.base_model.save_pretrained(arguments.output)
    for name in TOKENIZER_FILES:
        shutil.copy(PROXY / name, arguments.output / name)
    print(f"CAIS test accuracy with its own head: {accuracy:.3f} ({len(test)} messages, trained on {len(train)});"
          f" encoder saved to {arguments.output}")


if __name__ == "__main__":
    main()
