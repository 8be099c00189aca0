"""What training decides from the examples it holds out: which examples, and, after the encoder has
trained, how the heads combine and how confidences are calibrated (fitted on the held-out examples'
outputs, so every choice that depends on the data or the encoder is this bot's own).

Every intent with at least `MIN_EXAMPLES_TO_HOLD_OUT` examples gives `validation_split` of them, at least
one; the encoder and the closed-form heads train on the rest. The held-out examples choose the best
epoch (on the encoder head's own score), then the heads' weights (`combination.fit`, on the encoder's
outputs cross-fitted so that they are not those of the epoch chosen on them: `cross_fit`) and the
calibration (`confidence.fit`, on the served epoch's outputs, the scores it maps). Afterwards the
closed-form heads and the centroids are fitted again on every example, and the recommended threshold
is checked against generated gibberish as that served model scores it.
"""

import logging
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from bert_intent import combination, confidence, cross_fit, entities
from bert_intent.combination import Combination
from bert_intent.confidence import Calibration, ScoreParts
from bert_intent.encoding import batches_by_length, tokenize
from bert_intent.network import IntentNetwork
from bert_intent.settings import Settings

logger = logging.getLogger(__name__)

# An intent with fewer examples keeps them all for training.
MIN_EXAMPLES_TO_HOLD_OUT = 4
# Early stopping needs at least this many held-out examples: with fewer, one example is over a point of
# accuracy and training would stop on noise (the best epoch is still chosen, the plan runs to its end).
MIN_EARLY_STOPPING_EXAMPLES = 100
# Generated gibberish messages the served model's threshold is checked against (`confidence.catches_gibberish`
# needs at least 230; 1000 make it the 995th lowest), and how many of them anchor the calibration.
GIBBERISH_CHECKS = 1000
GIBBERISH_ANCHORS = 200


def split(label_ids: Sequence[int], fraction: float, seed: int) -> Tuple[List[int], List[int]]:
    """(train, held-out) indices: each intent with at least MIN_EXAMPLES_TO_HOLD_OUT examples gives
    `fraction` of them rounded down, at least one; `fraction` 0 holds out nothing."""
    everything = list(range(len(label_ids)))
    if fraction == 0:
        return everything, []
    generator = np.random.default_rng(seed)
    held_out: List[int] = []
    for label_id in sorted(set(label_ids)):
        members = [index for index in everything if label_ids[index] == label_id]
        if len(members) >= MIN_EXAMPLES_TO_HOLD_OUT:
            count = max(1, int(len(members) * fraction))
            held_out += generator.choice(members, size=count, replace=False).tolist()
    chosen = set(held_out)
    return [index for index in everything if index not in chosen], sorted(held_out)


@dataclass
class Fitted:
    """What the held-out examples chose (with entities, also the weight of the tag transitions in the
    decoding), and how each part of the network did on them: `parts` has the intent accuracy of the
    encoder head, the n-gram head and the served confidences (and, with entities, the span F1 of each
    tag head and of both combined, each token's most probable tag, and, with tag transitions, of the
    decoded tags: `decoded_entity_f1`; with epochs to cross-fit, `encoder_cross_fitted`:
    the encoder head's from the epoch the other half chose, free of the luck of the epoch chosen on the
    examples it is scored on); `confidences` of the held-out examples under the calibration."""

    intents: Combination = combination.INTENT_PRIOR
    tags: Combination = combination.TAG_PRIOR
    transition_weight: float = 0.0
    calibration: Calibration = Calibration()
    parts: Dict[str, float] = field(default_factory=dict)
    intent_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    confidences: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))


def outputs(
    network: IntentNetwork, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int, batch_size: int
) -> Dict[str, Any]:
    """The network's outputs for `texts` (in evaluation mode), as numpy arrays: per message, one row;
    per token (names with `tag`), one (tokens x tags) array per message without its padding. Messages
    run in batches of similar lengths, which wastes little compute on padding."""
    network.eval()
    batches = batches_by_length(texts, batch_size)
    collected: Dict[str, List[Any]] = {}
    for indices in batches:
        batch = [texts[index] for index in indices]
        inputs = tokenize(tokenizer, batch, max_length, return_tensors="pt", padding=True, offsets=False).to(network.device)
        lengths = inputs["attention_mask"].sum(dim=1).tolist()
        with torch.inference_mode():
            output = network(**inputs)
        for name, value in output.items():
            value = value.float().cpu().numpy()
            if "tag" in name:
                collected.setdefault(name, []).extend(row[:length] for row, length in zip(value, lengths))
            else:
                collected.setdefault(name, []).append(value)
    position = np.argsort([index for indices in batches for index in indices])  # each text's row among those run
    return {
        name: [values[index] for index in position] if "tag" in name else np.concatenate(values)[position]
        for name, values in collected.items()
    }


def fit(
    network: IntentNetwork,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    intent_ids: Sequence[int],
    tags: Sequence[Sequence[int]],
    settings: Settings,
    encoder_log_probs_by_epoch: Sequence[np.ndarray] = (),
    tag_transitions: Optional[np.ndarray] = None,
) -> Fitted:
    """Fit the heads' weights and the calibration on the held-out `texts` (their intents, and their
    token tags or none), with the network as trained on the other examples, and the weight of the
    other examples' `tag_transitions` (`entities.transition_log_probabilities`). With the encoder head's
    held-out intent log-probabilities of every epoch, the heads' weights are fitted on its cross-fitted
    outputs (`cross_fit`: each example's from the epoch the other half of the held-out examples chose);
    the calibration maps the served network's scores, so it is fitted on the served epoch's."""
    run = lambda batch: outputs(network, tokenizer, batch, settings.max_length, settings.batch_size)  # noqa: E731
    gibberish = run(gibberish_checks(settings)[:GIBBERISH_ANCHORS])
    intent_ids = np.asarray(intent_ids, dtype=int)
    fitted = Fitted(intent_ids=intent_ids)
    if len(intent_ids):
        held_out = run(texts)
        cross_fitted = cross_fit.cross_fitted(encoder_log_probs_by_epoch, intent_ids)
        encoder_for_weights = held_out["encoder_log_probs"] if cross_fitted is None else cross_fitted
        if settings.intent_classification and network.config.num_labels > 1:
            # The mirror prior is trusted only where every intent was checked: an intent with nothing
            # held out (too few examples) would follow an encoder nobody saw on it.
            every_intent_held_out = len(np.unique(intent_ids)) == network.config.num_labels
            priors = combination.INTENT_PRIORS if every_intent_held_out else combination.INTENT_PRIORS[:1]
            fitted.intents = combination.fit(encoder_for_weights, held_out["ngram_log_probs"], intent_ids, priors)
        if tags:
            fitted.tags, fitted.transition_weight, tag_parts = _fit_tags(held_out, tags, tag_transitions)
            fitted.parts.update(tag_parts)
        parts = _score_parts(held_out, fitted.intents)
        fitted.calibration = confidence.fit(parts, intent_ids, _score_parts(gibberish, fitted.intents), settings.threshold_keeps)
        fitted.confidences = confidence.apply(fitted.calibration, parts)
        fitted.parts.update(
            encoder=combination.accuracy(held_out["encoder_log_probs"], intent_ids),
            ngrams=combination.accuracy(held_out["ngram_log_probs"], intent_ids),
            served=combination.accuracy(fitted.confidences, intent_ids),
        )
        if cross_fitted is not None:
            fitted.parts.update(encoder_cross_fitted=combination.accuracy(cross_fitted, intent_ids))
    return fitted


def gibberish_checks(settings: Settings) -> List[str]:
    """The generated gibberish the threshold is checked against; the first `GIBBERISH_ANCHORS` of them
    the calibration is fitted beside."""
    return confidence.gibberish(GIBBERISH_CHECKS, settings.random_seed)


def checked_against_served(
    fitted: Fitted, confidences_of: Callable[[List[str]], np.ndarray], settings: Settings
) -> Tuple[Calibration, np.ndarray]:
    """The calibration with its threshold checked against the generated gibberish as the served model
    scores it (`confidences_of`: closed-form heads and centroids refitted on every example, joined
    intents weighed), which the model fitted on the held-out examples only approximates; and those
    gibberish confidences. Without held-out examples, the prior threshold."""
    gibberish_confidences = confidences_of(gibberish_checks(settings))
    if not len(fitted.intent_ids):
        return fitted.calibration, gibberish_confidences
    threshold = confidence.recommended_threshold(
        fitted.confidences.max(axis=1), gibberish_confidences.max(axis=1), settings.threshold_keeps
    )
    return replace(fitted.calibration, threshold=threshold), gibberish_confidences


def _score_parts(outputs_: Dict[str, Any], intents: Combination) -> ScoreParts:
    closed = combination.combine(
        torch.from_numpy(outputs_["encoder_log_probs"]), torch.from_numpy(outputs_["ngram_log_probs"]), intents.weights()
    )
    return ScoreParts(closed.double().numpy(), outputs_["familiarity"], outputs_["similarity"])


def _fit_tags(
    held_out: Dict[str, Any], tags: Sequence[Sequence[int]], transitions: Optional[np.ndarray]
) -> Tuple[Combination, float, Dict[str, float]]:
    """The tag heads' weights, fitted on every held-out token with a tag, the weight of the tag
    `transitions` in the decoding (0 without them), and each head's span F1."""
    kept = [np.asarray(row) != entities.IGNORED for row in tags]
    targets = np.concatenate([np.asarray(row)[keep] for row, keep in zip(tags, kept)])
    encoder, ngrams = (
        np.concatenate([log_probs[keep] for log_probs, keep in zip(held_out[name], kept)])
        for name in ("encoder_tag_log_probs", "ngram_tag_log_probs")
    )
    weights = combination.fit(encoder, ngrams, targets, (combination.TAG_PRIOR,))
    span_f1 = lambda name: entities.span_f1(tags, [log_probs.argmax(axis=-1) for log_probs in held_out[name]])  # noqa: E731
    combined = [
        combination.combine(torch.from_numpy(encoder_row), torch.from_numpy(ngram_row), weights.weights()).numpy()
        for encoder_row, ngram_row in zip(held_out["encoder_tag_log_probs"], held_out["ngram_tag_log_probs"])
    ]
    parts = {
        "encoder_entity_f1": span_f1("encoder_tag_log_probs"),
        "ngrams_entity_f1": span_f1("ngram_tag_log_probs"),
        "served_entity_f1": entities.span_f1(tags, [row.argmax(axis=-1) for row in combined]),
    }
    transition_weight = 0.0
    if transitions is not None:
        transition_weight, parts["decoded_entity_f1"] = entities.fit_transition_weight(combined, tags, transitions)
    return weights, transition_weight, parts
