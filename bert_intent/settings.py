"""The classifier's configuration: its keys (defaults, what each allows), validation into typed, frozen
`Settings`, and what the machine offers (device, precision, CPU threads)."""

import contextlib
import dataclasses
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, NamedTuple, Optional, Set, Tuple

from bert_intent.errors import ConfigError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
# The shapes of a BERT built from scratch (`checkpoints.SIZE_PRESETS`).
SCRATCH_SIZES = ("tiny", "mini", "small")
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")
CLASS_WEIGHTS = ("balanced", "none")
REPORT_TO = ("none", "tensorboard", "wandb", "mlflow")
BACKENDS = ("auto", "onnx", "torch")
PRECISIONS = ("auto", "bf16", "fp16", "no")


class _Key(NamedTuple):
    default: Any
    allowed: str
    coerce: Callable[[Any], Optional[Any]]  # the accepted value, or None when not allowed
    # A key whose default is None (null in YAML) also accepts None.


def _int(value: Any) -> Optional[int]:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _int_at_least(minimum: int) -> Callable[[Any], Optional[int]]:
    return lambda value: value if _int(value) is not None and value >= minimum else None


def _float(value: Any) -> Optional[float]:
    """A finite number; strings such as "2e-5" count (YAML 1.1 reads them as text)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float("inf") else None


def _positive_float(value: Any) -> Optional[float]:
    number = _float(value)
    return number if number is not None and number > 0 else None


def _fraction(value: Any) -> Optional[float]:
    number = _float(value)
    return number if number is not None and 0 <= number < 1 else None


def _bool(value: Any) -> Optional[bool]:
    return value if isinstance(value, bool) else None


def _non_negative_float(value: Any) -> Optional[float]:
    number = _float(value)
    return number if number is not None and number >= 0 else None


def _share(value: Any) -> Optional[float]:
    number = _float(value)
    return number if number is not None and 0 < number < 1 else None


def _decay(value: Any) -> Optional[float]:
    number = _float(value)
    return number if number is not None and 0 < number <= 1 else None


def _one_of(choices: Tuple[str, ...]) -> Callable[[Any], Optional[str]]:
    return lambda value: value if isinstance(value, str) and value in choices else None


def _non_empty_text(value: Any) -> Optional[str]:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _device(value: Any) -> Optional[str]:
    return value.lower() if isinstance(value, str) and value.lower() in DEVICE_CHOICES else None


KEYS: Dict[str, _Key] = {
    "model_name": _Key(
        "bert-base-chinese", "a Hugging Face model id or a local checkpoint directory", _non_empty_text
    ),
    "pretrained": _Key(
        True, "true (fine-tune model_name) or false (train a small BERT from scratch, offline)", _bool
    ),
    "scratch_size": _Key("mini", f"one of {', '.join(SCRATCH_SIZES)}", _one_of(SCRATCH_SIZES)),
    # 0, not null, for "auto": `rasa train --finetune` multiplies this key's value by --epoch-fraction.
    "epochs": _Key(0, "0 (chosen from the data size) or a positive integer", _int_at_least(0)),
    "batch_size": _Key(16, "a positive integer", _int_at_least(1)),
    "learning_rate": _Key(None, "null (chosen from the checkpoint's width) or a positive number", _positive_float),
    "warmup_ratio": _Key(0.1, "a number in [0, 1)", _fraction),
    "lr_scheduler_type": _Key("linear", f"one of {', '.join(SCHEDULERS)}", _one_of(SCHEDULERS)),
    "weight_decay": _Key(0.01, "a number >= 0", _non_negative_float),
    "layerwise_lr_decay": _Key(1.0, "a number in (0, 1] (1 gives every layer the same rate)", _decay),
    "freeze_layers": _Key(0, "an integer >= 0 (embeddings + that many encoder layers)", _int_at_least(0)),
    "freeze_embeddings": _Key(False, "true (the word embeddings keep their pretrained values) or false", _bool),
    "group_by_length": _Key(
        True, "true (each training batch takes examples of similar length: less padding) or false", _bool
    ),
    "dropout": _Key(None, "null (the checkpoint's own) or a number in [0, 1)", _fraction),
    "label_smoothing": _Key(0.0, "a number in [0, 1)", _fraction),
    "contrastive_weight": _Key(0.0, "a number >= 0 (0: no supervised contrastive term)", _non_negative_float),
    "class_weights": _Key("balanced", f"one of {', '.join(CLASS_WEIGHTS)}", _one_of(CLASS_WEIGHTS)),
    "gradient_accumulation_steps": _Key(1, "a positive integer", _int_at_least(1)),
    "gradient_checkpointing": _Key(False, "true or false", _bool),
    "validation_split": _Key(0.1, "a number in [0, 1) (0 turns validation off)", _fraction),
    # 0: the plan (about 500 optimizer steps) runs to its end and the best epoch is kept. Stopping after a
    # few epochs without a better held-out macro-F1 cut CAIS (75 % of intents, seed 2) at epoch 4 of 8:
    # the score dips while the learning rate is at its peak, and the encoder kept was 17 points worse.
    "early_stopping_patience": _Key(0, "an integer >= 0 (0: the plan runs to its end)", _int_at_least(0)),
    "intent_classification": _Key(True, "true or false (false: only entities are extracted)", _bool),
    "entity_recognition": _Key(
        True, "true (entities are learned when the training data annotates any) or false", _bool
    ),
    "intent_split_symbol": _Key(
        "+", "a non-empty string (joins two intents' names into a multi-intent, as Rasa's)", _non_empty_text
    ),
    "threshold_keeps": _Key(
        0.95, "a number in (0, 1): the share of validation messages the recommended threshold keeps", _share
    ),
    "report_dir": _Key(None, "null or a directory path", _non_empty_text),
    "report_to": _Key("none", f"one of {', '.join(REPORT_TO)}", _one_of(REPORT_TO)),
    "max_length": _Key(128, "an integer of at least 3 (tokens, [CLS] and [SEP] included)", _int_at_least(3)),
    "random_seed": _Key(42, "an integer", _int),
    "ranking_length": _Key(10, "an integer >= 0 (0 lists every intent)", _int_at_least(0)),
    "device": _Key("auto", f"one of {', '.join(DEVICE_CHOICES)}", _device),
    "mixed_precision": _Key(
        "auto", f"one of {', '.join(PRECISIONS)} (auto: bf16 where the GPU or CPU computes it natively)", _one_of(PRECISIONS)
    ),
    "inference_backend": _Key("auto", f"one of {', '.join(BACKENDS)}", _one_of(BACKENDS)),
    "quantize": _Key(True, "true (int8 weights) or false (float32 weights)", _bool),
    "cpu_threads": _Key(None, "null (every core the process may use) or a positive integer", _int_at_least(1)),
}

DEFAULTS: Dict[str, Any] = {name: key.default for name, key in KEYS.items()}


@dataclass(frozen=True)
class Settings:
    """A resolved configuration: every key of KEYS, validated (see KEYS for what each allows)."""

    model_name: str
    pretrained: bool
    scratch_size: str
    epochs: int
    batch_size: int
    learning_rate: Optional[float]
    warmup_ratio: float
    lr_scheduler_type: str
    weight_decay: float
    layerwise_lr_decay: float
    freeze_layers: int
    freeze_embeddings: bool
    group_by_length: bool
    dropout: Optional[float]
    label_smoothing: float
    contrastive_weight: float
    class_weights: str
    gradient_accumulation_steps: int
    gradient_checkpointing: bool
    validation_split: float
    early_stopping_patience: int
    intent_classification: bool
    entity_recognition: bool
    intent_split_symbol: str
    threshold_keeps: float
    report_dir: Optional[str]
    report_to: str
    max_length: int
    random_seed: int
    ranking_length: int
    device: str
    mixed_precision: str
    inference_backend: str
    quantize: bool
    cpu_threads: Optional[int]

    def replace(self, **changes: Any) -> "Settings":
        """A copy with `changes`, validated like a configuration."""
        return validate({**self.to_dict(), **changes})

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


def validate(config: Dict[str, Any]) -> Settings:
    """Return the full configuration (defaults filled in) or raise ConfigError naming the bad key."""
    unknown = sorted(set(config) - set(KEYS))
    if unknown:
        raise ConfigError(
            f"BertIntentClassifier: unknown config key(s) {', '.join(map(repr, unknown))}. "
            f"Allowed keys: {', '.join(KEYS)}."
        )
    resolved = dict(DEFAULTS)
    for name, value in config.items():
        key = KEYS[name]
        if value is None and key.default is None:
            continue
        accepted = key.coerce(value)
        if accepted is None:
            raise ConfigError(f"BertIntentClassifier: '{name}' must be {key.allowed}, got {value!r}.")
        resolved[name] = accepted
    if resolved["report_to"] == "tensorboard" and resolved["report_dir"] is None:
        raise ConfigError("BertIntentClassifier: report_to: tensorboard needs report_dir (where the logs go).")
    if not resolved["intent_classification"] and not resolved["entity_recognition"]:
        raise ConfigError(
            "BertIntentClassifier: intent_classification and entity_recognition are both false, so there is "
            "nothing to learn. Set one of them to true, or remove the component from the pipeline."
        )
    return Settings(**resolved)


def resolve_device(device: str) -> "torch.device":
    """Map the `device` setting to a torch device; `auto` prefers CUDA, then MPS, then the CPU."""
    import torch  # here, so that validating a configuration does not load torch

    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if device == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if (device == "cuda" and not cuda) or (device == "mps" and not mps):
        raise ConfigError(
            f"BertIntentClassifier: device '{device}' was requested but is not available on this "
            "machine. Use device: auto (or cpu)."
        )
    return torch.device(device)


def resolve_backend(backend: str, device: "torch.device") -> str:
    """`onnx` or `torch`; `auto` serves with ONNX Runtime on a CPU and with PyTorch on a GPU."""
    if backend == "auto":
        return "onnx" if device.type == "cpu" else "torch"
    return backend


def resolve_precision(precision: str, device: "torch.device") -> str:
    """`bf16`, `fp16` or `no` (float32) for training on `device`. `auto` takes bf16 on a CUDA GPU that
    computes it (fp16 on older ones) and on a CPU with bf16 instructions (AVX-512 BF16 or AMX, where
    autocast pays; elsewhere bf16 is emulated and slower), float32 otherwise (MPS included)."""
    import torch

    if precision == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if device.type == "cpu" and cpu_computes_bf16() else "no"
    allowed = {"cuda": ("bf16", "fp16", "no"), "cpu": ("bf16", "no"), "mps": ("no",)}[device.type]
    if precision not in allowed:
        raise ConfigError(
            f"BertIntentClassifier: mixed_precision '{precision}' is not available for training on {device.type}; "
            f"use one of auto, {', '.join(allowed)}."
        )
    return precision


def cpu_computes_bf16() -> bool:
    """Whether this CPU has bf16 instructions."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def cpu_flags() -> Set[str]:
    """This CPU's feature flags (read from /proc/cpuinfo: Linux; none elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            return {flag for line in cpuinfo if line.startswith("flags") for flag in line.split(":", 1)[1].split()}
    except OSError:
        return set()


def usable_cores() -> int:
    """The cores this process may use: its CPU affinity, at most its container's CPU quota rounded up
    (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us`) and `LOKY_MAX_CPU_COUNT` when set, as joblib counts
    them for scikit-learn. A container limited to 2 CPUs on a 32-core host sees 32 cores, and threads
    beyond its quota only wait for it."""
    from joblib import cpu_count

    try:
        return cpu_count()
    except (OSError, ValueError):  # a cgroup file that cannot be read or parsed: no quota known
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextlib.contextmanager
def torch_threads_within_quota() -> Iterator[None]:
    """torch's CPU threads at most `usable_cores()` inside the block (torch counts the cores it sees, a
    container's quota aside), as they were after it."""
    import torch

    before, cores = torch.get_num_threads(), usable_cores()
    if before > cores:
        logger.info("torch runs %d threads instead of %d: this process may use %d CPUs (its container's quota).", cores, before, cores)
        torch.set_num_threads(cores)
    try:
        yield
    finally:
        torch.set_num_threads(before)
