"""transformers' Trainer, set up for the network: the loss of the encoder's own heads, layer-wise
learning rates, the held-out score of each epoch, keeping the best epoch and stopping early."""

import contextlib
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from accelerate.utils import patch_environment
from sklearn.utils.class_weight import compute_class_weight
from torch.nn import functional
from transformers import EvalPrediction, PreTrainedTokenizerBase, ProgressCallback, Trainer, TrainerCallback, TrainingArguments
from transformers.integrations import TensorBoardCallback

from bert_intent import entities, schedule
from bert_intent.checkpoints import TRANSFORMERS_5
from bert_intent.contrastive import supervised_contrastive
from bert_intent.encoding import PadWithTags
from bert_intent.layers import parameter_groups
from bert_intent.network import IntentNetwork, IntentOutput
from bert_intent.reports import scores
from bert_intent.settings import Settings

# transformers 4 is what Python 3.8/3.9 get. transformers 5 reads a float `warmup_steps` below 1 as a
# ratio and dropped `warmup_ratio`, and names the length-grouped sampler by `train_sampling_strategy`
# where 4 has a `group_by_length` flag.
_WARMUP_KEY = "warmup_steps" if TRANSFORMERS_5 else "warmup_ratio"

# On a macro-F1 tie, validation loss (mean cross-entropy, nats) must fall by at least this much to count
# as an improvement: once every example is right it otherwise keeps creeping down by a hair each epoch,
# and early stopping would never fire.
MIN_LOSS_IMPROVEMENT = 0.01


def improves(score: float, validation_loss: float, best: Optional[Tuple[float, float]]) -> bool:
    """Whether an epoch beats the best so far (score, validation loss): a higher validation score (see
    `metrics`), or the same (common on a small validation set, where several epochs get every example
    right) and a validation loss lower by at least `MIN_LOSS_IMPROVEMENT`, i.e. a clearly surer model."""
    if best is None:
        return True
    best_score, best_loss = best
    return score > best_score or (score == best_score and validation_loss <= best_loss - MIN_LOSS_IMPROVEMENT)


class _IntentTrainer(Trainer):
    """Trainer of the encoder and its heads: class-weighted, label-smoothed cross-entropy of the intent
    (with `contrastive_weight`, plus a supervised contrastive term on the representation) plus the
    cross-entropy of the entity tags (as in JointBERT), and layer-wise learning rates."""

    def __init__(
        self, *args: Any, class_weights: Optional[torch.Tensor], settings: Settings, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._class_weights = class_weights
        self._label_smoothing = settings.label_smoothing
        self._contrastive_weight = settings.contrastive_weight
        self._layer_decay = settings.layerwise_lr_decay
        self._learns_intents = settings.intent_classification

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
            if self._contrastive_weight and model.training:
                loss = loss + self._contrastive_weight * supervised_contrastive(outputs.representation, inputs["labels"])
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

    def _get_eval_sampler(self, eval_dataset: Any) -> List[int]:
        # transformers 5 evaluates in a random length-grouped order. The order is drawn here as Trainer
        # draws it (the same random numbers, so training is unchanged) and kept, so that each epoch's
        # held-out outputs can be put back in the held-out examples' order.
        sampler = super()._get_eval_sampler(eval_dataset)
        order = list(sampler) if sampler is not None else list(range(len(eval_dataset)))
        self.compute_metrics.order = order  # a HeldOutPredictions (`build_trainer`)
        return order

    def evaluation_loop(self, *args: Any, **kwargs: Any) -> Any:
        # Each epoch's held-out outputs choose the epoch kept and fit the heads' weights of the float32
        # network that is served, so they are computed in float32 whatever precision the epoch trained in.
        mixed_precision = self.args.bf16 or self.args.fp16
        with _in_float32(self.model) if mixed_precision else contextlib.nullcontext():
            return super().evaluation_loop(*args, **kwargs)

    def create_optimizer(self, model: Optional[IntentNetwork] = None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            optimizer_class, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)
            groups = parameter_groups(self.model, self.args.learning_rate, self.args.weight_decay, self._layer_decay)
            self.optimizer = optimizer_class(groups, **optimizer_kwargs)
        return self.optimizer


@contextlib.contextmanager
def _in_float32(model: IntentNetwork) -> Iterator[None]:
    """Run `model`'s forward in float32 within the block: without the mixed-precision wrapper accelerate
    puts on it (`_original_forward` is what it wraps), and without the autocast that transformers 4's
    Trainer puts around the call on a CPU."""
    wrapped = model.__dict__.get("forward")
    original = model.__dict__.get("_original_forward", model.forward)
    device_type = next(model.parameters()).device.type

    def forward(*args: Any, **kwargs: Any) -> Any:
        with torch.autocast(device_type, enabled=False):
            return original(*args, **kwargs)

    model.forward = forward
    try:
        yield
    finally:
        if wrapped is None:
            del model.forward
        else:
            model.forward = wrapped


class KeepBestEpoch(TrainerCallback):
    """Keep a copy of the weights of the best epoch (see `improves`), restored after training,
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
        if improves(*scores, self.best_scores):
            # transformers 4 leaves `state.epoch` None for an evaluation before any training: epoch 0.
            self.best_scores, self.best_epoch, self.epochs_without_improvement = scores, round(state.epoch or 0), 0
            self.best_weights = {name: value.detach().to("cpu", copy=True) for name, value in model.state_dict().items()}
        else:
            self.epochs_without_improvement += 1
            control.should_training_stop = 0 < self.patience <= self.epochs_without_improvement

    def restore(self, model: IntentNetwork) -> None:
        if self.best_weights is not None:
            model.load_state_dict(self.best_weights)


class HeldOutPredictions:
    """Trainer's `compute_metrics`: each epoch's held-out scores (`metrics`), keeping the encoder head's
    intent log-probabilities of every epoch (rows in the held-out examples' order) for `cross_fit`."""

    def __init__(self, learns_intents: bool, learns_entities: bool) -> None:
        self.learns_intents = learns_intents
        self.learns_entities = learns_entities
        self.intent_log_probs: List[np.ndarray] = []
        self.order: Optional[List[int]] = None  # the held-out example of each evaluated row (set by the trainer)

    def __call__(self, prediction: EvalPrediction) -> Dict[str, float]:
        evaluated = np.asarray(prediction.predictions[0] if self.learns_entities else prediction.predictions, dtype=np.float32)
        in_order = evaluated.copy()  # a new array: `prediction` stays in Trainer's order for `metrics`
        if self.order is not None:
            in_order[self.order] = evaluated
        self.intent_log_probs.append(in_order)
        return metrics(prediction, self.learns_intents, self.learns_entities)


class _LossInProgressBar(ProgressCallback):
    """Trainer's progress bar, showing the running loss instead of printing every log entry."""

    def on_log(self, args: TrainingArguments, state: Any, control: Any, logs: Optional[Dict] = None, **kwargs: Any) -> None:
        if self.training_bar is not None and logs and "loss" in logs:
            self.training_bar.set_postfix(loss=f"{float(logs['loss']):.4f}")


def build_trainer(
    network: IntentNetwork,
    tokenizer: PreTrainedTokenizerBase,
    train_set: List[Dict[str, Any]],
    validation_set: List[Dict[str, Any]],
    settings: Settings,
    device: torch.device,
    precision: str,
    output_dir: str,
    best_epoch: KeepBestEpoch,
    predictions: HeldOutPredictions,
) -> "_IntentTrainer":
    """A Trainer of `network` on `train_set` on `device` with `precision` (`settings.resolve_precision`),
    scoring every epoch on `validation_set` (when there is one) with `predictions`."""
    validating = bool(validation_set)
    learns_entities = predictions.learns_entities
    steps_per_epoch = schedule.steps_per_epoch(len(train_set), settings)
    tensorboard = settings.report_to == "tensorboard"
    callbacks: List[Any] = [best_epoch]
    if tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        callbacks.append(TensorBoardCallback(SummaryWriter(str(Path(settings.report_dir) / "tensorboard"))))
    train_labels = [example["labels"] for example in train_set]
    # accelerate takes the precision from ACCELERATE_MIXED_PRECISION where it is given none, and transformers
    # reads it for a float32 training (4 also writes each training's own into it, so a bf16 training made
    # every later one in the process bf16, as would a value the user exported): it says `precision` while
    # the arguments and the Trainer are made, and is restored after.
    with patch_environment(accelerate_mixed_precision=precision):
        arguments = TrainingArguments(
            output_dir=output_dir,
            num_train_epochs=settings.epochs,
            per_device_train_batch_size=settings.batch_size,
            per_device_eval_batch_size=settings.batch_size,
            gradient_accumulation_steps=settings.gradient_accumulation_steps,
            gradient_checkpointing=settings.gradient_checkpointing,
            learning_rate=settings.learning_rate,
            weight_decay=settings.weight_decay,
            lr_scheduler_type=settings.lr_scheduler_type,
            **{_WARMUP_KEY: settings.warmup_ratio},
            **_sampling(settings.group_by_length),
            seed=settings.random_seed,
            use_cpu=device.type == "cpu",
            bf16=precision == "bf16",
            fp16=precision == "fp16",
            logging_strategy="steps",
            logging_steps=max(1, steps_per_epoch // 10),
            eval_strategy="epoch" if validating else "no",
            save_strategy="no",
            report_to="none" if tensorboard else settings.report_to,
            label_names=["labels", "entity_tags"] if learns_entities else ["labels"],
        )
        trainer = _IntentTrainer(
            model=network,
            args=arguments,
            train_dataset=train_set,
            eval_dataset=validation_set or None,
            data_collator=PadWithTags(tokenizer),
            compute_metrics=predictions,
            callbacks=callbacks,
            class_weights=_class_weights(train_labels, network.config.num_labels, settings.class_weights),
            settings=settings,
        )
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(_LossInProgressBar)
    return trainer


def _sampling(group_by_length: bool) -> Dict[str, Any]:
    """The training sampler's argument: batches of similar lengths (transformers' LengthGroupedSampler:
    random chunks of up to 50 batches, sorted by length within each) or plain random ones."""
    if TRANSFORMERS_5:
        return {"train_sampling_strategy": "group_by_length" if group_by_length else "random"}
    return {"group_by_length": group_by_length}


def metrics(prediction: EvalPrediction, learns_intents: bool, learns_entities: bool) -> Dict[str, float]:
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
