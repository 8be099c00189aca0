"""Fine-tune a BERT-family checkpoint on (text, intent, entities) examples: the steps of one training
run, in order. Each step's machinery lives in its own module: `encoding` (examples and tags),
`checkpoints` (where training starts), `schedule` (epochs, learning rate), `trainer` (transformers'
Trainer), `held_out` (what the held-out examples decide) and `reports` (what training tells the user)."""

import copy
import logging
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
import transformers
from transformers import PreTrainedTokenizerBase

from bert_intent import checkpoints, encoding, entities, held_out, multi_intent, schedule, wordless
from bert_intent.encoding import PadWithTags, valid_unicode
from bert_intent.entities import EntityType
from bert_intent.errors import BertIntentError, ConfigError
from bert_intent.layers import freeze_bottom, freeze_word_embeddings, set_dropout
from bert_intent.model import IntentModel
from bert_intent.network import IntentNetwork
from bert_intent.reports import ConfidenceReport, epoch_history, summary_line, training_summary, write_reports
from bert_intent.settings import Settings, resolve_device, resolve_precision, torch_threads_within_quota
from bert_intent.trainer import HeldOutPredictions, KeepBestEpoch, build_trainer

logger = logging.getLogger(__name__)


def fine_tune(
    texts: Sequence[str],
    intents: Sequence[str],
    settings: Settings,
    start_from: Optional[IntentModel] = None,
    epoch_fraction: float = 1.0,
    annotations: Sequence[Sequence[Dict[str, Any]]] = (),
) -> IntentModel:
    """Train a classifier that predicts `intents[i]` from `texts[i]` and, with `annotations` (Rasa's
    entity dicts with start, end, entity and optional role and group, one list per text) and
    `entity_recognition` on, finds their entities.

    The network is `start_from`'s when given (continued fine-tuning, same intents required), else
    `settings.model_name`'s encoder with new heads, else (with `pretrained: false`) a small BERT
    built from scratch. `epoch_fraction` scales the number of epochs chosen with `epochs: 0`
    (`rasa train --finetune --epoch-fraction`; Rasa scales an explicit `epochs` itself). Labels are
    sorted, so the same data and settings give the same model. With a single intent and no entities
    there is nothing to learn and no network is built.

    Examples of a multi-intent (two intents' names joined by `intent_split_symbol`, both with examples
    of their own) are not learned as a label: they help decide when a message holds both parts
    (`multi_intent.py`). torch trains with at most the CPUs a container's quota allows.
    """
    with torch_threads_within_quota():
        return _fine_tune(texts, intents, settings, start_from, epoch_fraction, annotations)


def _fine_tune(
    texts: Sequence[str],
    intents: Sequence[str],
    settings: Settings,
    start_from: Optional[IntentModel],
    epoch_fraction: float,
    annotations: Sequence[Sequence[Dict[str, Any]]],
) -> IntentModel:
    if len(texts) != len(intents) or not texts:
        raise ValueError("fine_tune needs as many intents as texts, and at least one of each.")
    not_text = next((index for index, text in enumerate(texts) if not isinstance(text, str)), None)
    if not_text is not None:
        raise BertIntentError(
            f"Training example {not_text} (intent '{intents[not_text]}') is {texts[not_text]!r}, not text."
        )
    texts = [valid_unicode(text) for text in texts]
    marks = wordless.taught_marks(texts)
    annotations = list(annotations) or [[] for _ in texts]
    joined = multi_intent.joined_intents(intents, settings.intent_split_symbol)[0] if settings.intent_classification else []
    joined_names = {intent.name for intent in joined}
    joined_examples = [(text, intent) for text, intent in zip(texts, intents) if intent in joined_names]
    single = [index for index, intent in enumerate(intents) if intent not in joined_names]
    texts, intents, annotations = ([values[index] for index in single] for values in (texts, intents, annotations))
    labels = sorted(set(intents))
    types = encoding.entity_types_to_learn(annotations, settings.entity_recognition, settings.intent_classification)
    if start_from is not None and (start_from.labels, start_from.entity_types) != (labels, types):
        raise BertIntentError(_changed_labels_message(start_from, labels, types))
    if len(labels) == 1 and not types:
        return IntentModel(labels, settings, wordless_marks=marks)

    device = resolve_device(settings.device)
    precision = resolve_precision(settings.mixed_precision, device)
    transformers.set_seed(settings.random_seed)  # seeds the new weights too
    if start_from is not None:
        # A copy: the model continued from keeps its own network and calibration.
        tokenizer, network = start_from.tokenizer, copy.deepcopy(start_from.network)
        origin = "the previously trained model (continued)"
    else:
        tokenizer, network, origin = checkpoints.starting_point(texts, labels, entities.tag_count(types), settings)
    try:
        freeze_bottom(network, settings.freeze_layers)
    except ValueError as error:
        raise ConfigError(f"BertIntentClassifier: {error}") from error
    if settings.freeze_embeddings:
        frozen = freeze_word_embeddings(network)
        logger.info("The word embeddings keep their pretrained values (freeze_embeddings): %d weights fewer to train.", frozen)
    if settings.dropout is not None:
        set_dropout(network, settings.dropout)
    max_length = min(settings.max_length, network.config.max_position_embeddings)
    label_index = {label: index for index, label in enumerate(labels)}
    label_ids = [label_index[intent] for intent in intents]
    examples, whole_words = encoding.examples(tokenizer, texts, intents, label_ids, annotations, types, max_length)
    train_indices, validation_indices = held_out.split(label_ids, settings.validation_split, settings.random_seed)
    train_set = [examples[index] for index in train_indices]
    validation_set = [examples[index] for index in validation_indices]
    epochs, epochs_reason = schedule.planned_epochs(len(train_set), settings, epoch_fraction)
    learning_rate, rate_reason = schedule.learning_rate(network.config.hidden_size, settings)
    settings = settings.replace(max_length=max_length, epochs=epochs, learning_rate=learning_rate)
    _fit_closed_form_heads(network, tokenizer, train_set, settings.class_weights == "balanced")
    logger.info(
        "Training %s on %d examples of %d intents and %d entity types (%d held out to choose the epoch, the "
        "heads' weights and the calibration) for up to %d epochs (%s) at learning rate %.1e (%s) on %s (%s).",
        origin, len(train_set), len(labels), len(types), len(validation_set), epochs, epochs_reason,
        learning_rate, rate_reason, device,
        _PRECISION_NAMES[precision] + (", batches of similar lengths" if settings.group_by_length else ""),
    )
    patience = settings.early_stopping_patience if len(validation_set) >= held_out.MIN_EARLY_STOPPING_EXAMPLES else 0
    best_epoch = KeepBestEpoch(patience)
    predictions = HeldOutPredictions(settings.intent_classification, learns_entities=bool(types))
    with tempfile.TemporaryDirectory(prefix="bert-intent-") as output_dir:
        trainer = build_trainer(
            network, tokenizer, train_set, validation_set, settings, device, precision, output_dir, best_epoch, predictions
        )
        trainer.train()
        best_epoch.restore(trainer.model)
        history = epoch_history(trainer.state.log_history)
    # Without the mixed-precision wrapper Trainer put on its forward: what follows is fitted in float32, as served.
    network = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False).to(device).eval()
    representations = held_out.outputs(network, tokenizer, texts, max_length, settings.batch_size)["representation"]
    network.centroids.fit(torch.from_numpy(representations[train_indices]), [label_ids[index] for index in train_indices])
    fitted = held_out.fit(
        network, tokenizer, [texts[index] for index in validation_indices], [label_ids[index] for index in validation_indices],
        [examples[index]["entity_tags"] for index in validation_indices] if types else [], settings,
        predictions.intent_log_probs, _tag_transitions(train_set, types),
    )
    # The decoding's tag transitions, counted in every example, as much as the held-out examples chose.
    tag_transitions = fitted.transition_weight * _tag_transitions(examples, types) if fitted.transition_weight else None
    # The served model as the held-out examples configured it, before any multi-intent decision.
    scoring = IntentModel(
        labels, settings, tokenizer, network, calibration=fitted.calibration, entity_types=types,
        combinations=(fitted.intents, fitted.tags), joined=joined, whole_words=whole_words,
        tag_transitions=tag_transitions, wordless_marks=marks,
    )
    decision = multi_intent.fit_on_held_out(
        scoring.single_and_pair_scores, labels, joined, [(texts[index], intents[index]) for index in validation_indices],
        joined_examples,
        multi_intent.prior_share(
            len(joined), len(labels), len(joined_examples), len(texts), settings.class_weights == "balanced"
        ),
        settings.random_seed,
    )
    # Every example counts for the closed-form heads and the centroids of the model that is kept.
    network.centroids.fit(torch.from_numpy(representations), label_ids)
    _fit_closed_form_heads(network, tokenizer, examples, settings.class_weights == "balanced")
    network = network.to(device)
    model = IntentModel(
        labels, settings, tokenizer, network, calibration=fitted.calibration, entity_types=types,
        combinations=(fitted.intents, fitted.tags), joined=joined, decision=decision, whole_words=whole_words,
        tag_transitions=tag_transitions, wordless_marks=marks,
    )
    # The threshold is not part of what the network applies: setting it leaves the model's scores as they are.
    model.calibration, gibberish_confidences = held_out.checked_against_served(fitted, model.confidences, settings)
    report = ConfidenceReport(fitted.intent_ids, fitted.confidences, gibberish_confidences, model.calibration.threshold)
    summary = training_summary(
        history, best_epoch.best_epoch, settings, trainer.state.global_step, len(train_set), len(validation_set)
    )
    summary.update(
        epochs_reason=epochs_reason, learning_rate=learning_rate, learning_rate_reason=rate_reason,
        recommended_threshold=model.calibration.threshold, threshold_keeps=settings.threshold_keeps,
        gibberish_caught=report.gibberish_caught(),
        gibberish_checks=held_out.GIBBERISH_CHECKS, held_out_parts=fitted.parts,
        intent_weights=fitted.intents.to_dict(), tag_weights=fitted.tags.to_dict(), tag_transition_weight=fitted.transition_weight,
        joined_intents=len(joined), multi_intent=decision.to_dict(), precision=precision,
    )
    if len(fitted.intent_ids):
        summary.update(expected_calibration_error=report.expected_calibration_error(), threshold_kept=report.kept())
    summary.update(entity_types=len(types))
    logger.info(summary_line(summary))
    if joined:
        logger.info(multi_intent.describe(joined, decision))
    if settings.report_dir is not None and len(fitted.intent_ids):
        predicted = report.validation_confidences.argmax(axis=-1)
        write_reports(Path(settings.report_dir), labels, fitted.intent_ids, predicted, history, report)
        logger.info("Training reports written to %s.", settings.report_dir)
    elif settings.report_dir is not None:
        logger.info("No training reports: they describe the held-out examples, and this training had none.")
    model.summary = summary
    return model


_PRECISION_NAMES = {
    "bf16": "bf16 mixed precision", "fp16": "fp16 mixed precision", "no": "float32",
}


def _fit_closed_form_heads(
    network: IntentNetwork, tokenizer: PreTrainedTokenizerBase, train_set: List[Dict[str, Any]], balanced: bool
) -> None:
    """Fit the network's intent n-gram head (with several intents) and lexical tag head (with entity
    tags) on the training examples, padded once (on the CPU, where the network is moved, in closed form)."""
    network.cpu()
    batch = PadWithTags(tokenizer, return_tensors="pt")(train_set)
    network.fit_closed_form(
        batch["input_ids"], batch["attention_mask"], [example["labels"] for example in train_set], balanced,
        tokenizer.unk_token_id, batch.get("entity_tags"), entities.IGNORED,
        batch.get(encoding.WORD_NGRAMS), batch.get(encoding.WORD_NGRAM_PRESENT),
    )


def _tag_transitions(examples: Sequence[Dict[str, Any]], types: Sequence[EntityType]) -> Optional[np.ndarray]:
    """log P(tag | previous tag) in the examples' entity tags (`entities.transition_log_probabilities`);
    None without entity types."""
    if not types:
        return None
    return entities.transition_log_probabilities([example["entity_tags"] for example in examples], entities.tag_count(types))


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
