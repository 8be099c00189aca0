"""A fine-tuned BERT sequence classifier with its tokenizer and intent labels: predict, save, load."""

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import transformers
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from bert_intent.errors import ModelLoadError

METADATA_FILE = "bert_intent.json"
FORMAT_VERSION = 1


class IntentModel:
    """Intent labels plus the network that scores them; a single label needs no network."""

    def __init__(
        self,
        labels: Sequence[str],
        settings: Dict[str, Any],
        tokenizer: Optional[PreTrainedTokenizerBase] = None,
        network: Optional[PreTrainedModel] = None,
        summary: Optional[Dict[str, Any]] = None,
    ) -> None:
        if network is None and len(labels) != 1:
            raise ValueError("A network is needed to choose between several labels.")
        self.labels: List[str] = list(labels)
        self.settings = dict(settings)
        self.tokenizer = tokenizer
        self.network = network.eval() if network is not None else None
        self.summary = dict(summary or {})  # what training did: epochs run, best epoch, its scores

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Softmax probabilities, one row per text and one column per label (in `labels` order)."""
        if self.network is None:
            return np.ones((len(texts), 1), dtype=np.float32)
        probabilities = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        # Batches of similar length waste little compute on padding.
        order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
        batch_size = self.settings["batch_size"]
        device = self.network.device
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            inputs = self.tokenizer(
                [texts[index] for index in indices],
                padding=True,
                truncation=True,
                max_length=self.settings["max_length"],
                return_tensors="pt",
            ).to(device)
            with torch.inference_mode():
                logits = self.network(**inputs).logits
            probabilities[indices] = logits.float().softmax(dim=-1).cpu().numpy()
        return probabilities

    def save(self, directory: Path) -> None:
        """Write safetensors weights, tokenizer files and `bert_intent.json` (labels, settings)."""
        directory.mkdir(parents=True, exist_ok=True)
        if self.network is not None:
            self.network.save_pretrained(directory, safe_serialization=True)
            self.tokenizer.save_pretrained(directory)
        metadata = {
            "format_version": FORMAT_VERSION,
            "labels": self.labels,
            "settings": self.settings,
            "training": self.summary,
        }
        (directory / METADATA_FILE).write_text(
            json.dumps(metadata, ensure_ascii=False, indent=2), encoding="utf-8"
        )

    @classmethod
    def load(cls, directory: Path, device: torch.device) -> "IntentModel":
        """Load a model written by `save`, reading nothing but `directory`."""
        metadata_path = directory / METADATA_FILE
        try:
            metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
            labels, settings = list(metadata["labels"]), dict(metadata["settings"])
            summary = dict(metadata.get("training", {}))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ModelLoadError(
                f"Cannot read {metadata_path}: {error!r}. Retrain the model with `rasa train`."
            ) from error
        if len(labels) == 1:
            return cls(labels, settings, summary=summary)
        try:
            tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
            network = AutoModelForSequenceClassification.from_pretrained(
                directory, local_files_only=True, use_safetensors=True
            )
        except (OSError, ValueError) as error:
            raise ModelLoadError(
                f"Cannot load the trained network from {directory}: {error}. "
                "Retrain the model with `rasa train`."
            ) from error
        return cls(labels, settings, tokenizer, network.to(device), summary)


def load_pretrained(
    model_name: str, labels: Sequence[str]
) -> Tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """Load a checkpoint's fast tokenizer and a freshly initialised classification head for `labels`."""
    previous_verbosity = transformers.logging.get_verbosity()
    # The "newly initialized classifier weights" warning is expected here, so only errors are shown.
    transformers.logging.set_verbosity_error()
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_name, use_fast=True)
        network = AutoModelForSequenceClassification.from_pretrained(
            model_name,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: index for index, label in enumerate(labels)},
            ignore_mismatched_sizes=True,
        )
    except (OSError, ValueError) as error:
        raise ModelLoadError(
            f"BertIntentClassifier could not load the pretrained model '{model_name}': {error}\n"
            "If this machine is offline or the Hugging Face Hub is blocked, download the checkpoint "
            "where the Hub is reachable (e.g. `hf download bert-base-chinese "
            "--local-dir ./bert-base-chinese`), copy the folder here and set `model_name` to that "
            "directory, or set the HF_ENDPOINT environment variable to a mirror."
        ) from error
    finally:
        transformers.logging.set_verbosity(previous_verbosity)
    return tokenizer, network
