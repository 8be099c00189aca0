"""Fine-tune a BERT-family checkpoint on (text, intent, entities) examples with transformers' Trainer."""

import functools
import logging
import math
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import transformers
from packaging.version import Version
from sklearn.utils.class_weight import compute_class_weight
from torch.nn import functional
from transformers import (
    DataCollatorWithPadding,
    EvalPrediction,
    PreTrainedTokenizerBase,
    ProgressCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)
from transformers.integrations import TensorBoardCallback

from bert_intent import entities, held_out
from bert_intent.entities import EntityType
from bert_intent.errors import BertIntentError, ConfigError
from bert_intent.layers import freeze_bottom, parameter_groups, set_dropout
from bert_intent.model import IntentModel, load_pretrained, valid_unicode
from bert_intent.network import IntentNetwork, IntentOutput
from bert_intent.reports import ConfidenceReport, epoch_history, scores, write_reports
from bert_intent.scratch import build_from_scratch
from bert_intent.settings import resolve_device

logger = logging.getLogger(__name__)

# transformers 5 reads a float `warmup_steps` below 1 as a ratio and dropped `warmup_ratio`;
# transformers 4 (what Python 3.8/3.9 get) only knows `warmup_ratio`.
_WARMUP_KEY = "warmup_steps" if Version(transformers.__version__).major >= 5 else "warmup_ratio"


# On a macro-F1 tie, validation loss (mean cross-entropy, nats) must fall by at least this much to count
# as an improvement: once every example is right it otherwise keeps creeping down by a hair each epoch,
# and early stopping would never fire.
_MIN_LOSS_IMPROVEMENT = 0.01

# With `epochs: 0`, training runs about this many optimizer steps (fine-tuning needs hundreds, whatever
# the data size: Mosbach et al. 2021, Zhang et al. 2021), within these bounds on the number of epochs.
TARGET_STEPS = 500
MIN_EPOCHS, MAX_EPOCHS = 3, 50
# With `learning_rate: null`: 3e-5 at bert-base's width (768), 1e-3 at BERT-mini's (256), log-linear
# in between and beyond, within these bounds. Narrow checkpoints want far higher rates than wide ones.
_RATE_ANCHORS = ((768, 3e-5), (256, 1e-3))
_RATE_BOUNDS = (1e-5, 1e-3)
# Annotations that cannot be learned from are warned about one by one up to this many, then counted.
_ANNOTATION_WARNINGS = 10


def _improves(score: float, validation_loss: float, best: Optional[Tuple[float, float]]) -> bool:
    """Whether an epoch beats the best so far (score, validation loss): a higher validation score (see
    `_metrics`), or the same (common on a small validation set, where several epochs get every example
    right) and a validation loss lower by at least `_MIN_LOSS_IMPROVEMENT`, i.e. a clearly surer model."""
    if best is None:
        return True
    best_score, best_loss = best
    return score > best_score or (score == best_score and validation_loss <= best_loss - _MIN_LOSS_IMPROVEMENT)


def fine_tune(
    texts: Sequence[str],
    intents: Sequence[str],
    settings: Dict[str, Any],
    start_from: Optional[IntentModel] = None,
    epoch_fraction: float = 1.0,
    annotations: Sequence[Sequence[Dict[str, Any]]] = (),
) -> IntentModel:
    """Train a classifier that predicts `intents[i]` from `texts[i]` and, with `annotations` (Rasa's
    entity dicts with start, end, entity and optional role and group, one list per text) and
    `entity_recognition` on, finds their entities.

    The network is `start_from`'s when given (continued fine-tuning, same intents required), else
    `settings["model_name"]`'s encoder with new heads, else (with `pretrained: false`) a small BERT
    built from scratch. `epoch_fraction` scales the number of epochs chosen with `epochs: 0`
    (`rasa train --finetune --epoch-fraction`; Rasa scales an explicit `epochs` itself). Labels are
    sorted, so the same data and settings give the same model. With a single intent and no entities
    there is nothing to learn and no network is built.
    """
    if len(texts) != len(intents) or not texts:
        raise ValueError("fine_tune needs as many intents as texts, and at least one of each.")
    not_text = next((index for index, text in enumerate(texts) if not isinstance(text, str)), None)
    if not_text is not None:
        raise BertIntentError(
            f"Training example {not_text} (intent '{intents[not_text]}') is {texts[not_text]!r}, not text."
        )
    texts = [valid_unicode(text) for text in texts]
    annotations = list(annotations) or [[] for _ in texts]
    labels = sorted(set(intents))
    types = _entity_types(annotations, settings)
    if start_from is not None and (start_from.labels, start_from.entity_types) != (labels, types):
        raise BertIntentError(_changed_labels_message(start_from, labels, types))
    if len(labels) == 1 and not types:
        return IntentModel(labels, settings)

    device = resolve_device(settings["device"])
    transformers.set_seed(settings["random_seed"])  # seeds the new weights too
    tokenizer, network, origin = _starting_point(texts, labels, entities.tag_count(types), settings, start_from)
    try:
        freeze_bottom(network, settings["freeze_layers"])
    except ValueError as error:
        raise ConfigError(f"BertIntentClassifier: {error}") from error
    if settings["dropout"] is not None:
        set_dropout(network, settings["dropout"])
    max_length = min(settings["max_length"], network.config.max_position_embeddings)
    label_index = {label: index for index, label in enumerate(labels)}
    label_ids = [label_index[intent] for intent in intents]
    encodings = tokenizer(list(texts), truncation=True, max_length=max_length, return_offsets_mapping=True)
    offsets = encodings.pop("offset_mapping")
    examples = [
        {**{key: values[index] for key, values in encodings.items()}, "labels": label_id}
        for index, label_id in enumerate(label_ids)
    ]
    if types:
        for example, tags in zip(examples, _entity_tags(texts, intents, offsets, annotations, types)):
            example["entity_tags"] = tags
    train_indices, validation_indices = held_out.split(label_ids, settings["validation_split"], settings["random_seed"])
    train_set = [examples[index] for index in train_indices]
    validation_set = [examples[index] for index in validation_indices]
    epochs, epochs_reason = _planned_epochs(len(train_set), settings, epoch_fraction)
    learning_rate, rate_reason = _learning_rate(network.config.hidden_size, settings)
    settings = {**settings, "max_length": max_length, "epochs": epochs, "learning_rate": learning_rate}
    _fit_closed_form_heads(network, tokenizer, train_set, settings["class_weights"] == "balanced")
    logger.info(
        "Training %s on %d examples of %d intents and %d entity types (%d held out to choose the epoch, the "
        "heads' weights and the calibration) for up to %d epochs (%s) at learning rate %.1e (%s) on %s.",
        origin, len(train_set), len(labels), len(types), len(validation_set), epochs, epochs_reason,
        learning_rate, rate_reason, device,
    )
    patience = settings["early_stopping_patience"] if len(validation_set) >= held_out.MIN_EARLY_STOPPING_EXAMPLES else 0
    best_epoch = _KeepBestEpoch(patience)
    with tempfile.TemporaryDirectory(prefix="bert-intent-") as output_dir:
        trainer = _trainer(network, tokenizer, train_set, validation_set, settings, device, output_dir, best_epoch)
        trainer.train()
        best_epoch.restore(trainer.model)
        history = epoch_history(trainer.state.log_history)
    network = trainer.model.to(device).eval()
    representations = held_out.outputs(network, tokenizer, texts, max_length, settings["batch_size"])["representation"]
    network.fit_centroids(torch.from_numpy(representations[train_indices]), [label_ids[index] for index in train_indices])
    fitted = held_out.fit(
        network, tokenizer, [texts[index] for index in validation_indices], [label_ids[index] for index in validation_indices],
        [examples[index]["entity_tags"] for index in validation_indices] if types else [], settings,
    )
    # Every example counts for the closed-form heads and the centroids of the model that is kept.
    network.fit_centroids(torch.from_numpy(representations), label_ids)
    _fit_closed_form_heads(network, tokenizer, examples, settings["class_weights"] == "balanced")
    network = network.to(device)
    report = ConfidenceReport(fitted.intent_ids, fitted.confidences, fitted.gibberish_confidences, fitted.calibration.threshold)
    summary = _summary(
        history, best_epoch.best_epoch, settings, trainer.state.global_step, len(train_set), len(validation_set)
    )
    summary.update(
        epochs_reason=epochs_reason, learning_rate=learning_rate, learning_rate_reason=rate_reason,
        recommended_threshold=fitted.calibration.threshold, threshold_keeps=settings["threshold_keeps"],
        gibberish_caught=report.gibberish_caught(), held_out_parts=fitted.parts,
        intent_weights=fitted.intents.to_dict(), tag_weights=fitted.tags.to_dict(),
    )
    if len(fitted.intent_ids):
        summary.update(expected_calibration_error=report.expected_calibration_error(), threshold_kept=report.kept())
    summary.update(entity_types=len(types))
    logger.info(_summary_line(summary))
    if settings["report_dir"] is not None and len(fitted.intent_ids):
        predicted = report.validation_confidences.argmax(axis=-1)
        write_reports(Path(settings["report_dir"]), labels, fitted.intent_ids, predicted, history, report)
        logger.info("Training reports written to %s.", settings["report_dir"])
    elif settings["report_dir"] is not None:
        logger.info("No training reports: they describe the held-out examples, and this training had none.")
    return IntentModel(
        labels, settings, tokenizer, network, summary, calibration=fitted.calibration, entity_types=types,
        combinations=(fitted.intents, fitted.tags),
    )


def _entity_types(annotations: List[Sequence[Dict[str, Any]]], settings: Dict[str, Any]) -> List[EntityType]:
    """The entity types to learn: every annotated one, with `entity_recognition` on."""
    if not settings["entity_recognition"]:
        return []
    types = entities.entity_types(annotations)
    if not types and not settings["intent_classification"]:
        raise BertIntentError(
            "BertIntentClassifier has intent_classification: false, so it only extracts entities, but the "
            "training data annotates none. Annotate entities (e.g. `- 明天[上海](city)会下雨吗`) or set "
            "intent_classification: true."
        )
    if not types:
        logger.info("The training data annotates no entities, so BertIntentClassifier learns intents only.")
    return types


def _entity_tags(
    texts: Sequence[str],
    intents: Sequence[str],
    offsets: Sequence[Sequence[Tuple[int, int]]],
    annotations: Sequence[Sequence[Dict[str, Any]]],
    types: List[EntityType],
) -> List[List[int]]:
    """Each example's token tags; a warning names every annotation that cannot be learned from."""
    all_tags, problems = [], []
    for text, intent, token_offsets, text_annotations in zip(texts, intents, offsets, annotations):
        tags, text_problems = entities.token_tags(text, token_offsets, text_annotations, types)
        all_tags.append(tags)
        problems += [f"Training example '{text}' (intent '{intent}'): the entity {problem}." for problem in text_problems]
    for problem in problems[:_ANNOTATION_WARNINGS]:
        logger.warning("BertIntentClassifier: %s It is left out of training (the rest of the example is used).", problem)
    if len(problems) > _ANNOTATION_WARNINGS:
        logger.warning(
            "BertIntentClassifier: %d more entity annotations cannot be learned from, for the same reasons.",
            len(problems) - _ANNOTATION_WARNINGS,
        )
    return all_tags


class _IntentTrainer(Trainer):
    """Trainer of the encoder and its heads: class-weighted, label-smoothed cross-entropy of the intent
    plus the cross-entropy of the entity tags (as in JointBERT), and layer-wise learning rates."""

    def __init__(
        self, *args: Any, class_weights: Optional[torch.Tensor], settings: Dict[str, Any], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._class_weights = class_weights
        self._label_smoothing = settings["label_smoothing"]
        self._layer_decay = settings["layerwise_lr_decay"]
        self._learns_intents = settings["intent_classification"]

    def compute_loss(
        self, model: IntentNetwork, inputs: Dict[str, Any], return_outputs: bool = False, **kwargs: Any
    ) -> Any:
        outputs = model(**{key: value for key, value in inputs.items() if key not in ("labels", "entity_tags")})
        # The encoder learns from its own heads, and validation scores them alone: the closed-form heads
        # are fixed, so only the encoder's own score tells epochs apart.
        logits = outputs.encoder_log_probs
        weights = None if self._class_weights is None else self._class_weights.to(logits.device)
        loss = logits.new_zeros(())
        if self._learns_intents:
            loss = functional.cross_entropy(logits, inputs["labels"], weight=weights, label_smoothing=self._label_smoothing)
        if "entity_tags" in inputs:
            tag_logits = outputs.encoder_tag_log_probs
            loss = loss + functional.cross_entropy(
                tag_logits.reshape(-1, tag_logits.shape[-1]), inputs["entity_tags"].reshape(-1), ignore_index=entities.IGNORED
            )
        # Trainer's evaluation compares the outputs with the labels: the encoder's intent and tag log-probabilities.
        evaluated = IntentOutput(
            logits=logits, tag_logits=outputs.encoder_tag_log_probs if "entity_tags" in inputs else None
        )
        return (loss, evaluated) if return_outputs else loss

    def create_optimizer(self, model: Optional[IntentNetwork] = None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            optimizer_class, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)
            groups = parameter_groups(self.model, self.args.learning_rate, self.args.weight_decay, self._layer_decay)
            self.optimizer = optimizer_class(groups, **optimizer_kwargs)
        return self.optimizer


class _KeepBestEpoch(TrainerCallback):
    """Keep a copy of the weights of the best epoch (see `_improves`), restored after training,
    and stop after `patience` epochs without improvement (0: never stop early).

    Trainer's own `load_best_model_at_end` reloads its checkpoint with a plain `load_state_dict`; on
    transformers 5.3 that misses BERT's LayerNorm weights (saved as gamma/beta), so a copy in memory
    is kept instead, which also spares writing a checkpoint every epoch.
    """

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best_scores: Optional[Tuple[float, float]] = None
        self.best_epoch: Optional[int] = None
        self.best_weights: Optional[Dict[str, torch.Tensor]] = None
        self.epochs_without_improvement = 0

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Dict[str, float], model: Any = None, **kwargs: Any) -> None:
        scores = metrics["eval_selection_score"], metrics["eval_loss"]
        if _improves(*scores, self.best_scores):
            self.best_scores, self.best_epoch, self.epochs_without_improvement = scores, round(state.epoch), 0
            self.best_weights = {name: value.detach().to("cpu", copy=True) for name, value in model.state_dict().items()}
        else:
            self.epochs_without_improvement += 1
            control.should_training_stop = 0 < self.patience <= self.epochs_without_improvement

    def restore(self, model: IntentNetwork) -> None:
        if self.best_weights is not None:
            model.load_state_dict(self.best_weights)


class _LossInProgressBar(ProgressCallback):
    """Trainer's progress bar, showing the running loss instead of printing every log entry."""

    def on_log(self, args: TrainingArguments, state: Any, control: Any, logs: Optional[Dict] = None, **kwargs: Any) -> None:
        if self.training_bar is not None and logs and "loss" in logs:
            self.training_bar.set_postfix(loss=f"{float(logs['loss']):.4f}")


def _trainer(
    network: IntentNetwork,
    tokenizer: PreTrainedTokenizerBase,
    train_set: List[Dict[str, Any]],
    validation_set: List[Dict[str, Any]],
    settings: Dict[str, Any],
    device: torch.device,
    output_dir: str,
    best_epoch: _KeepBestEpoch,
) -> _IntentTrainer:
    validating = bool(validation_set)
    learns_entities = "entity_tags" in train_set[0]
    steps_per_epoch = math.ceil(len(train_set) / (settings["batch_size"] * settings["gradient_accumulation_steps"]))
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    tensorboard = settings["report_to"] == "tensorboard"
    arguments = TrainingArguments(
        output_dir=output_dir,
        num_train_epochs=settings["epochs"],
        per_device_train_batch_size=settings["batch_size"],
        per_device_eval_batch_size=settings["batch_size"],
        gradient_accumulation_steps=settings["gradient_accumulation_steps"],
        gradient_checkpointing=settings["gradient_checkpointing"],
        learning_rate=settings["learning_rate"],
        weight_decay=settings["weight_decay"],
        lr_scheduler_type=settings["lr_scheduler_type"],
        **{_WARMUP_KEY: settings["warmup_ratio"]},
        seed=settings["random_seed"],
        use_cpu=device.type == "cpu",
        bf16=bf16,
        fp16=device.type == "cuda" and not bf16,
        logging_strategy="steps",
        logging_steps=max(1, steps_per_epoch // 10),
        eval_strategy="epoch" if validating else "no",
        save_strategy="no",
        report_to="none" if tensorboard else settings["report_to"],
        label_names=["labels", "entity_tags"] if learns_entities else ["labels"],
    )
    callbacks: List[Any] = [best_epoch]
    if tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        callbacks.append(TensorBoardCallback(SummaryWriter(str(Path(settings["report_dir"]) / "tensorboard"))))
    train_labels = [example["labels"] for example in train_set]
    trainer = _IntentTrainer(
        model=network,
        args=arguments,
        train_dataset=train_set,
        eval_dataset=validation_set or None,
        data_collator=_PadWithTags(tokenizer),
        compute_metrics=functools.partial(
            _metrics, learns_intents=settings["intent_classification"], learns_entities=learns_entities
        ),
        callbacks=callbacks,
        class_weights=_class_weights(train_labels, network.config.num_labels, settings["class_weights"]),
        settings=settings,
    )
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(_LossInProgressBar)
    return trainer


class _PadWithTags(DataCollatorWithPadding):
    """Pads the tokenizer's outputs as DataCollatorWithPadding does, and entity tags with IGNORED."""

    def __call__(self, features: List[Dict[str, Any]]) -> Dict[str, Any]:
        tags = [feature["entity_tags"] for feature in features if "entity_tags" in feature]
        batch = super().__call__([{key: value for key, value in feature.items() if key != "entity_tags"} for feature in features])
        if tags:
            width = batch["input_ids"].shape[1]
            batch["entity_tags"] = torch.tensor([row + [entities.IGNORED] * (width - len(row)) for row in tags])
        return batch


def _metrics(prediction: EvalPrediction, learns_intents: bool, learns_entities: bool) -> Dict[str, float]:
    """Intent accuracy and macro-F1, entity span F1, and the score that picks the best epoch: the
    intents' macro-F1, the entities' F1, or their mean when both are learned."""
    if not learns_entities:
        metrics = scores(prediction.label_ids, np.argmax(prediction.predictions, axis=-1))
        return {**metrics, "selection_score": metrics["macro_f1"]}
    (intent_logits, tag_logits), (intent_ids, tag_ids) = prediction.predictions, prediction.label_ids
    metrics = scores(intent_ids, np.argmax(intent_logits, axis=-1))
    metrics["entity_f1"] = entities.span_f1(tag_ids, np.argmax(tag_logits, axis=-1))
    parts = [metrics["macro_f1"]] * learns_intents + [metrics["entity_f1"]]
    return {**metrics, "selection_score": float(np.mean(parts))}


def _class_weights(train_labels: List[int], num_labels: int, mode: str) -> Optional[torch.Tensor]:
    """`balanced`: each intent's loss weighs n_examples / (n_intents * n_examples_of_that_intent)."""
    if mode == "none":
        return None
    weights = compute_class_weight("balanced", classes=np.arange(num_labels), y=train_labels)
    return torch.tensor(weights, dtype=torch.float32)


def _planned_epochs(train_size: int, settings: Dict[str, Any], epoch_fraction: float) -> Tuple[int, str]:
    """The number of epochs to train and why: `epochs`, or with `epochs: 0` enough epochs for about
    TARGET_STEPS optimizer steps (MIN_EPOCHS to MAX_EPOCHS), scaled by `epoch_fraction`."""
    if settings["epochs"]:
        return settings["epochs"], "as configured"
    steps_per_epoch = math.ceil(train_size / (settings["batch_size"] * settings["gradient_accumulation_steps"]))
    epochs = min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(TARGET_STEPS / steps_per_epoch)))
    reason = f"chosen for about {TARGET_STEPS} optimizer steps of {steps_per_epoch} per epoch, {MIN_EPOCHS} to {MAX_EPOCHS} epochs"
    if epoch_fraction != 1.0:
        return max(1, math.ceil(epochs * epoch_fraction)), f"{reason}, times the epoch fraction {epoch_fraction}"
    return epochs, reason


def _learning_rate(hidden_size: int, settings: Dict[str, Any]) -> Tuple[float, str]:
    """`learning_rate`, or with `learning_rate: null` one for the encoder's width (see _RATE_ANCHORS)."""
    if settings["learning_rate"] is not None:
        return settings["learning_rate"], "as configured"
    (wide, wide_rate), (narrow, narrow_rate) = _RATE_ANCHORS
    slope = math.log(narrow_rate / wide_rate) / math.log(wide / narrow)
    rate = min(_RATE_BOUNDS[1], max(_RATE_BOUNDS[0], wide_rate * (wide / hidden_size) ** slope))
    return rate, f"chosen for hidden size {hidden_size}"


def _fit_closed_form_heads(
    network: IntentNetwork, tokenizer: PreTrainedTokenizerBase, train_set: List[Dict[str, Any]], balanced: bool
) -> None:
    """Fit the network's intent n-gram head (with several intents) and lexical tag head (with entity
    tags) on the training examples, padded once (on the CPU, where the network is moved, in closed form)."""
    network.cpu()
    batch = _PadWithTags(tokenizer, return_tensors="pt")(train_set)
    if network.config.num_labels > 1:
        label_ids = [example["labels"] for example in train_set]
        network.fit_ngrams(batch["input_ids"], batch["attention_mask"], label_ids, balanced, tokenizer.unk_token_id)
    if "entity_tags" in batch:
        network.fit_tag_ngrams(batch["input_ids"], batch["entity_tags"], entities.IGNORED)


def _summary(
    history: List[Dict[str, float]],
    best_epoch: Optional[int],
    settings: Dict[str, Any],
    optimizer_steps: int,
    train_size: int,
    validation_size: int,
) -> Dict[str, Any]:
    """Epochs run and, with validation, the best epoch (the one kept) and its scores."""
    summary: Dict[str, Any] = {
        "epochs_run": history[-1]["epoch"] if history else 0,
        "epochs": settings["epochs"],
        "optimizer_steps": optimizer_steps,
        "train_examples": train_size,
        "validation_examples": validation_size,
    }
    if best_epoch is not None:
        best = next(row for row in history if row["epoch"] == best_epoch)
        summary.update(
            best_epoch=best["epoch"], validation_accuracy=best["accuracy"], validation_macro_f1=best["macro_f1"]
        )
        if "entity_f1" in best:
            summary.update(validation_entity_f1=best["entity_f1"])
    return summary


def _summary_line(summary: Dict[str, Any]) -> str:
    line = (
        f"Trained {summary['epochs_run']} of {summary['epochs']} epochs ({summary['epochs_reason']}"
        f"{'; stopped early' if summary['epochs_run'] < summary['epochs'] else ''}) at learning rate "
        f"{summary['learning_rate']:.1e} ({summary['learning_rate_reason']})"
    )
    gibberish = f"catches {summary['gibberish_caught']:.0%} of {held_out.GIBBERISH_CHECKS} generated gibberish messages"
    threshold = f"recommended FallbackClassifier threshold: {summary['recommended_threshold']:.2f}"
    if "best_epoch" not in summary:
        return line + (
            "; nothing was held out (validation_split is 0, or no intent has 4 examples), so the last epoch is "
            f"kept and the heads' weights and the calibration are the priors; {threshold} (the prior; it {gibberish})."
        )
    parts, intents, tags = summary["held_out_parts"], summary["intent_weights"], summary["tag_weights"]
    tag_part = (
        f"; entity span F1: tagger {parts['encoder_entity_f1']:.3f}, n-grams {parts['ngrams_entity_f1']:.3f}, "
        f"combined {parts['served_entity_f1']:.3f}, weights {tags['encoder']:.2f} and {tags['ngrams']:.2f}"
        if "served_entity_f1" in parts else ""
    )
    return line + (
        f"; kept epoch {summary['best_epoch']}, the best of the encoder head's own held-out macro-F1 "
        f"({summary['validation_macro_f1']:.3f}{_entity_part(summary)}) on {summary['validation_examples']} held-out "
        f"examples. On them: encoder head alone {parts['encoder']:.3f}, n-gram head alone {parts['ngrams']:.3f}, "
        f"served {parts['served']:.3f} (weights chosen: encoder {intents['encoder']:.2f}, n-grams {intents['ngrams']:.2f})"
        f"{tag_part}; calibrated on them, expected calibration error {summary['expected_calibration_error']:.3f}; "
        f"{threshold} (keeps {summary['threshold_kept']:.0%} of them, {gibberish})."
    )


def _entity_part(summary: Dict[str, Any]) -> str:
    return f", entity F1 {summary['validation_entity_f1']:.3f}" if "validation_entity_f1" in summary else ""


def _starting_point(
    texts: Sequence[str],
    labels: List[str],
    num_tags: int,
    settings: Dict[str, Any],
    start_from: Optional[IntentModel],
) -> Tuple[PreTrainedTokenizerBase, IntentNetwork, str]:
    """The tokenizer and network training starts from, and a description of them for the log."""
    if start_from is not None:
        return start_from.tokenizer, start_from.network, "the previously trained model (continued)"
    if settings["pretrained"]:
        tokenizer, network = load_pretrained(settings["model_name"], labels, num_tags)
        return tokenizer, network, f"'{settings['model_name']}'"
    tokenizer, network = build_from_scratch(texts, labels, settings["scratch_size"], settings["max_length"], num_tags)
    return tokenizer, network, f"a {settings['scratch_size']} BERT from scratch"


def _changed_labels_message(trained: IntentModel, labels: Sequence[str], types: Sequence[EntityType]) -> str:
    changes = []
    for what, before, now in (
        ("intents", trained.labels, labels),
        ("entity types", [_described(entity_type) for entity_type in trained.entity_types], [_described(entity_type) for entity_type in types]),
    ):
        added, removed = sorted(set(now) - set(before)), sorted(set(before) - set(now))
        if added or removed:
            changes.append(f"the {what} changed (added: {', '.join(added) or 'none'}; removed: {', '.join(removed) or 'none'})")
    return f"BertIntentClassifier cannot continue training the previous model: {'; '.join(changes)}. Train a new model without --finetune."


def _described(entity_type: EntityType) -> str:
    return entity_type.entity + (f" (role {entity_type.role})" if entity_type.role else "") + (
        f" (group {entity_type.group})" if entity_type.group else ""
    )
