"""Fine-tune a BERT-family checkpoint on (text, intent) examples with transformers' Trainer."""

import logging
import tempfile
from typing import Any, Dict, List, Sequence

import transformers
from packaging.version import Version
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

from bert_intent.model import IntentModel, load_pretrained
from bert_intent.settings import resolve_device

logger = logging.getLogger(__name__)

# transformers 5 reads a float `warmup_steps` below 1 as a ratio and dropped `warmup_ratio`;
# transformers 4 (what Python 3.8/3.9 get) only knows `warmup_ratio`.
_WARMUP_KEY = "warmup_steps" if Version(transformers.__version__).major >= 5 else "warmup_ratio"


def fine_tune(texts: Sequence[str], intents: Sequence[str], settings: Dict[str, Any]) -> IntentModel:
    """Fine-tune `settings["model_name"]` to predict `intents[i]` from `texts[i]`.

    Labels are sorted, so the same data and settings give the same model. With a single intent
    there is nothing to learn and no network is loaded.
    """
    if len(texts) != len(intents) or not texts:
        raise ValueError("fine_tune needs as many intents as texts, and at least one of each.")
    labels = sorted(set(intents))
    if len(labels) == 1:
        return IntentModel(labels, settings)

    device = resolve_device(settings["device"])
    transformers.set_seed(settings["random_seed"])  # seeds the new classification head too
    tokenizer, network = load_pretrained(settings["model_name"], labels)
    max_length = min(settings["max_length"], network.config.max_position_embeddings)
    settings = {**settings, "max_length": max_length}

    label_ids = {label: index for index, label in enumerate(labels)}
    encodings = tokenizer(list(texts), truncation=True, max_length=max_length)
    examples: List[Dict[str, Any]] = [
        {**{key: values[index] for key, values in encodings.items()}, "labels": label_ids[intent]}
        for index, intent in enumerate(intents)
    ]
    logger.info(
        "Fine-tuning %s on %d examples of %d intents for %d epochs on %s.",
        settings["model_name"], len(examples), len(labels), settings["epochs"], device,
    )
    with tempfile.TemporaryDirectory(prefix="bert-intent-") as output_dir:
        arguments = TrainingArguments(
            output_dir=output_dir,
            num_train_epochs=settings["epochs"],
            per_device_train_batch_size=settings["batch_size"],
            learning_rate=settings["learning_rate"],
            lr_scheduler_type="linear",
            **{_WARMUP_KEY: settings["warmup_ratio"]},
            seed=settings["random_seed"],
            use_cpu=device.type == "cpu",
            save_strategy="no",
            logging_strategy="epoch",
            report_to="none",
        )
        trainer = Trainer(
            model=network,
            args=arguments,
            train_dataset=examples,
            data_collator=DataCollatorWithPadding(tokenizer),
        )
        trainer.train()
    return IntentModel(labels, settings, tokenizer, trainer.model.to(device))
