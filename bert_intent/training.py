"""Fine-tune a BERT-family checkpoint on (text, intent) examples with transformers' Trainer."""

import logging
import tempfile
from typing import Any, Dict, List, Optional, Sequence, Tuple

import transformers
from packaging.version import Version
from transformers import (
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
)

from bert_intent.errors import BertIntentError
from bert_intent.model import IntentModel, load_pretrained
from bert_intent.scratch import build_from_scratch
from bert_intent.settings import resolve_device

logger = logging.getLogger(__name__)

# transformers 5 reads a float `warmup_steps` below 1 as a ratio and dropped `warmup_ratio`;
# transformers 4 (what Python 3.8/3.9 get) only knows `warmup_ratio`.
_WARMUP_KEY = "warmup_steps" if Version(transformers.__version__).major >= 5 else "warmup_ratio"


def fine_tune(
    texts: Sequence[str],
    intents: Sequence[str],
    settings: Dict[str, Any],
    start_from: Optional[IntentModel] = None,
) -> IntentModel:
    """Train a classifier that predicts `intents[i]` from `texts[i]`.

    The network is `start_from`'s when given (continued fine-tuning, same intents required), else
    `settings["model_name"]` with a new classification head, else (with `pretrained: false`) a small
    BERT built from scratch. Labels are sorted, so the same data and settings give the same model.
    With a single intent there is nothing to learn and no network is built.
    """
    if len(texts) != len(intents) or not texts:
        raise ValueError("fine_tune needs as many intents as texts, and at least one of each.")
    labels = sorted(set(intents))
    if start_from is not None and start_from.labels != labels:
        raise BertIntentError(_changed_intents_message(start_from.labels, labels))
    if len(labels) == 1:
        return IntentModel(labels, settings)

    device = resolve_device(settings["device"])
    transformers.set_seed(settings["random_seed"])  # seeds the new weights too
    tokenizer, network, origin = _starting_point(texts, labels, settings, start_from)
    max_length = min(settings["max_length"], network.config.max_position_embeddings)
    settings = {**settings, "max_length": max_length}

    label_ids = {label: index for index, label in enumerate(labels)}
    encodings = tokenizer(list(texts), truncation=True, max_length=max_length)
    examples: List[Dict[str, Any]] = [
        {**{key: values[index] for key, values in encodings.items()}, "labels": label_ids[intent]}
        for index, intent in enumerate(intents)
    ]
    logger.info(
        "Training %s on %d examples of %d intents for %d epochs on %s.",
        origin, len(examples), len(labels), settings["epochs"], device,
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


def _starting_point(
    texts: Sequence[str], labels: List[str], settings: Dict[str, Any], start_from: Optional[IntentModel]
) -> Tuple[PreTrainedTokenizerBase, PreTrainedModel, str]:
    """The tokenizer and network training starts from, and a description of them for the log."""
    if start_from is not None:
        return start_from.tokenizer, start_from.network, "the previously trained model (continued)"
    if settings["pretrained"]:
        tokenizer, network = load_pretrained(settings["model_name"], labels)
        return tokenizer, network, f"'{settings['model_name']}'"
    tokenizer, network = build_from_scratch(texts, labels, settings["scratch_size"], settings["max_length"])
    return tokenizer, network, f"a {settings['scratch_size']} BERT from scratch"


def _changed_intents_message(trained: Sequence[str], current: Sequence[str]) -> str:
    added = sorted(set(current) - set(trained))
    removed = sorted(set(trained) - set(current))
    return (
        "BertIntentClassifier cannot continue training the previous model: the intents changed "
        f"(added: {', '.join(added) or 'none'}; removed: {', '.join(removed) or 'none'}). "
        "Train a new model without --finetune."
    )
