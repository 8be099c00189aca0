"""A fine-tuned BERT sequence classifier with its tokenizer and intent labels: predict, save, load."""

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnxruntime
import torch
import transformers
from scipy.special import softmax
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from bert_intent import onnx_network
from bert_intent.errors import ModelLoadError

METADATA_FILE = "bert_intent.json"
NETWORK_FILE = "model.onnx"
FORMAT_VERSION = 2  # 2: the weights are in model.onnx (1 had model.safetensors)


class IntentModel:
    """Intent labels plus what scores them: a torch network (after training, or the torch backend)
    or an ONNX Runtime session (the onnx backend). A single label needs neither."""

    def __init__(
        self,
        labels: Sequence[str],
        settings: Dict[str, Any],
        tokenizer: Optional[PreTrainedTokenizerBase] = None,
        network: Optional[PreTrainedModel] = None,
        summary: Optional[Dict[str, Any]] = None,
        session: Optional[onnxruntime.InferenceSession] = None,
    ) -> None:
        if network is None and session is None and len(labels) != 1:
            raise ValueError("A network or an ONNX session is needed to choose between several labels.")
        self.labels: List[str] = list(labels)
        self.settings = dict(settings)
        self.tokenizer = tokenizer
        self.network = network.eval() if network is not None else None
        self.session = session
        self.summary = dict(summary or {})  # what training did: epochs run, best epoch, its scores

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Softmax probabilities, one row per text and one column per label (in `labels` order)."""
        if len(self.labels) == 1:
            return np.ones((len(texts), 1), dtype=np.float32)
        probabilities = np.empty((len(texts), len(self.labels)), dtype=np.float32)
        # Batches of similar length waste little compute on padding.
        order = sorted(range(len(texts)), key=lambda index: len(texts[index]))
        batch_size = self.settings["batch_size"]
        for start in range(0, len(order), batch_size):
            indices = order[start : start + batch_size]
            probabilities[indices] = softmax(self._logits([texts[index] for index in indices]), axis=-1)
        return probabilities

    def _logits(self, texts: List[str]) -> np.ndarray:
        inputs = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.settings["max_length"], return_tensors="np"
        )
        if self.session is not None:
            feeds = {item.name: inputs[item.name].astype(np.int64) for item in self.session.get_inputs()}
            return self.session.run(None, feeds)[0]
        tensors = {name: torch.from_numpy(values).to(self.network.device) for name, values in inputs.items()}
        with torch.inference_mode():
            return self.network(**tensors).logits.float().cpu().numpy()

    def save(self, directory: Path) -> None:
        """Write the network as `model.onnx` (int8 weights unless `quantize` is off) with its config,
        the tokenizer files and `bert_intent.json` (labels, settings, training summary)."""
        directory.mkdir(parents=True, exist_ok=True)
        metadata: Dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "labels": self.labels,
            "settings": self.settings,
            "training": self.summary,
        }
        if len(self.labels) > 1:
            if self.network is None:
                raise ValueError("Only a model with its torch network (a trained or torch-loaded one) can be saved.")
            metadata["parameters"] = onnx_network.export(
                self.network, self.tokenizer.model_input_names, directory / NETWORK_FILE, self.settings["quantize"]
            )
            self.network.config.save_pretrained(directory)
            self.tokenizer.save_pretrained(directory)
        (directory / METADATA_FILE).write_text(json.dumps(metadata, ensure_ascii=False, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path, device: torch.device, backend: str) -> "IntentModel":
        """Load a model written by `save`, reading nothing but `directory`; `backend` is `onnx`
        (ONNX Runtime on the CPU) or `torch` (a torch network on `device`, which training can continue)."""
        metadata_path = directory / METADATA_FILE
        try:
            metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
            version = metadata.get("format_version")
            labels, settings = list(metadata["labels"]), dict(metadata["settings"])
            summary = dict(metadata.get("training", {}))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise ModelLoadError(
                f"Cannot read {metadata_path}: {error!r}. Retrain the model with `rasa train`."
            ) from error
        if version != FORMAT_VERSION:
            raise ModelLoadError(
                f"{metadata_path} is format {version}, but this bert-intent reads format {FORMAT_VERSION}: "
                "the model was saved by another version of bert-intent. Retrain it with `rasa train`."
            )
        if len(labels) == 1:
            return cls(labels, settings, summary=summary)
        try:
            tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
            if backend == "onnx":
                session = onnx_network.session(directory / NETWORK_FILE, settings["cpu_threads"])
                return cls(labels, settings, tokenizer, summary=summary, session=session)
            network = AutoModelForSequenceClassification.from_config(
                AutoConfig.from_pretrained(directory, local_files_only=True)
            )
            network.load_state_dict(
                onnx_network.torch_weights(directory / NETWORK_FILE, metadata["parameters"]), strict=False
            )
        except (OSError, ValueError, KeyError, RuntimeError, *onnx_network.READ_ERRORS) as error:
            raise ModelLoadError(
                f"Cannot load the trained network from {directory}: {error}. Retrain the model with `rasa train`."
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
