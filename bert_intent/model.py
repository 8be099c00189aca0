"""A fine-tuned BERT intent classifier and entity tagger with its tokenizer, intent labels and entity
types: predict, save, load."""

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnxruntime
import torch
from transformers import AutoConfig, AutoTokenizer, PreTrainedTokenizerBase

from bert_intent import combination, entities, multi_intent, onnx_network, wordless
from bert_intent.combination import Combination
from bert_intent.confidence import Calibration
from bert_intent.encoding import WORD_CONTINUES, WORD_NGRAM_PRESENT, WORD_NGRAM_SPANS, WORD_NGRAMS, batches_by_length
from bert_intent.encoding import cut_short, load_segmenter, tokenize, valid_unicode, word_ngrams_in_parts
from bert_intent.entities import EntityType, Reading
from bert_intent.errors import ModelLoadError
from bert_intent.model_files import CONFIG_FILE, FORMAT_VERSION, METADATA_FILE, NETWORK_FILE, TOKENIZER_FILE
from bert_intent.model_files import check_widths, portable, read, required
from bert_intent.multi_intent import Decision, JoinedIntent
from bert_intent.network import IntentNetwork
from bert_intent.settings import Settings, validate

logger = logging.getLogger(__name__)


@dataclass
class Predictions:
    """`confidences`: one row per text, one column per intent (in `intent_names` order); `entities`: each
    text's entities (dicts with entity, start, end, value, confidence_entity, and role/group if any)."""

    confidences: np.ndarray
    entities: List[List[Dict[str, Any]]]


@dataclass
class _Scores:
    """Per text: the single intents' confidences, the joined intents' log pair scores and the points
    where they split it (`multi_intent.log_part_scores`), its tag reading (None: no entity types, or
    nothing readable); and the tag readings of the parts read alone, by the part's text."""

    confidences: np.ndarray
    log_pairs: np.ndarray
    cuts: np.ndarray
    readings: List[Optional[Reading]]
    part_readings: Dict[str, Reading]


@dataclass
class _Run:
    """One network run: per text, the intent confidences and its tags' `Reading` (tokens' character
    offsets, tag probabilities, tokens that continue a word); for texts read in parts, each one's split
    `points` and its parts' confidences (before each point, then after each, then rows of parts that
    read nothing); whether each text has something to read: a token the vocabulary knows and a word or
    a taught mark (`wordless.py`; without both, its confidences are 0 and it has no entities)."""

    confidences: np.ndarray
    tag_probabilities: np.ndarray
    offsets: np.ndarray
    continues: np.ndarray
    points: List[List[int]]
    part_confidences: np.ndarray
    readable: np.ndarray

    def reading(self, row: int) -> Reading:
        """The tag reading of text `row`."""
        return self.offsets[row], self.tag_probabilities[row], self.continues[row]


class IntentModel:
    """Intent labels and entity types plus what scores them: a torch network (after training, or the
    torch backend) or an ONNX Runtime session (the onnx backend). A single label without entity types
    needs neither. `joined` intents are scored from their parts' labels (`multi_intent.py`)."""

    def __init__(
        self,
        labels: Sequence[str],
        settings: Settings,
        tokenizer: Optional[PreTrainedTokenizerBase] = None,
        network: Optional[IntentNetwork] = None,
        summary: Optional[Dict[str, Any]] = None,
        session: Optional[onnxruntime.InferenceSession] = None,
        calibration: Calibration = Calibration(),
        entity_types: Sequence[EntityType] = (),
        combinations: Tuple[Combination, Combination] = (combination.INTENT_PRIOR, combination.TAG_PRIOR),
        joined: Sequence[JoinedIntent] = (),
        decision: Decision = Decision(),
        whole_words: bool = False,
        tag_transitions: Optional[np.ndarray] = None,
        wordless_marks: str = "",
    ) -> None:
        if network is None and session is None and (len(labels) != 1 or entity_types):
            raise ValueError("A network or an ONNX session is needed to choose between several labels or find entities.")
        self.labels: List[str] = list(labels)
        self.entity_types: List[EntityType] = list(entity_types)
        self.settings = settings
        self.tokenizer = tokenizer
        # Tokens that say nothing of a message: [CLS], [SEP], [PAD], [UNK], ... (`_readable`).
        self._unreadable_ids = np.asarray(tokenizer.all_special_ids if tokenizer is not None else [])
        # The most tokens of a message read, besides the special ones: beyond them it is cut (`cut_short`).
        self._tokens_at_most = settings.max_length - (tokenizer.num_special_tokens_to_add() if tokenizer is not None else 0)
        self.network = network.eval() if network is not None else None
        self.session = session
        self._session_inputs = [item.name for item in session.get_inputs()] if session is not None else []
        self.summary = dict(summary or {})  # what training did: epochs run, best epoch, its scores
        # The torch network applies them; an ONNX network has them built in.
        self.calibration = calibration
        self.combinations = combinations
        self.joined: List[JoinedIntent] = list(joined)
        self.decision = decision
        # Entities are whole words of the tokenizer: no training annotation began or ended inside one.
        self.whole_words = whole_words
        # Scores (previous tag x tag) the entity decoding adds: the training tags' transitions, weighted.
        self.tag_transitions = tag_transitions
        # The marks a message without a word may be made of and still be read (`wordless.taught_marks`).
        self.wordless_marks = wordless_marks
        self._taught_marks = frozenset(wordless_marks)
        if self.network is not None:
            self.network.configure(*combinations, calibration)

    @property
    def intent_names(self) -> List[str]:
        """The intents `predict` scores: the labels, then the joined intents."""
        return self.labels + [intent.name for intent in self.joined]

    def predict(self, texts: Sequence[str]) -> Predictions:
        """Calibrated intent confidences and the entities of each text. A row of confidences sums to
        less than 1: the rest is "none of them", large when the text is unlike the training examples
        (see `confidence.py`)."""
        if self.network is None and self.session is None:  # a single label without entity types: sure of any word
            said = wordless.says_something([valid_unicode(text) for text in texts], self._taught_marks)
            return Predictions(said[:, None].astype(np.float32), [[] for _ in texts])
        texts = [valid_unicode(text) for text in texts]
        scores = self._scores(texts)
        confidences, readings = scores.confidences, scores.readings
        if self.joined:
            confidences = multi_intent.shares(confidences, scores.log_pairs, self.decision).astype(np.float32)
            readings = multi_intent.readings_of_two(
                texts, confidences.argmax(axis=1) - len(self.labels), scores.cuts, scores.readings, scores.part_readings
            )
        found = [
            entities.decode(
                text, *reading, self.entity_types, cut_short(text, reading[0], self._tokens_at_most), self.tag_transitions
            )
            if reading is not None else []
            for text, reading in zip(texts, readings)
        ]
        return Predictions(confidences, found)

    def single_and_pair_scores(self, texts: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
        """The single intents' confidences of `texts` and the log scores of their joined intents' best
        pairs of parts (`multi_intent.log_part_scores`), from which `predict` weighs the joined intents."""
        scores = self._scores([valid_unicode(text) for text in texts])
        return scores.confidences, scores.log_pairs

    def _scores(self, texts: Sequence[str]) -> _Scores:
        """The network's scores of `texts`, and of their parts (`_Scores`)."""
        scores = _Scores(
            confidences=np.empty((len(texts), len(self.labels)), dtype=np.float32),
            log_pairs=np.full((len(texts), len(self.joined)), -np.inf),
            cuts=np.full((len(texts), len(self.joined)), -1),
            readings=[None for _ in texts],
            part_readings={},
        )

        def read_alone(parts: List[str]) -> np.ndarray:
            """The parts' confidences; their tag readings are kept for the entities of two requests."""
            run = self._run(parts)
            if self.entity_types:
                scores.part_readings.update(
                    (part, run.reading(row)) for row, part in enumerate(parts) if run.readable[row]
                )
            return run.confidences
        # The int8 network quantizes its activations with a scale taken from the whole batch, so a
        # message's scores would depend on its batch-mates: ONNX Runtime gets one message per run (and
        # its parts, read alone, one run together).
        batch_size = 1 if self.session is not None else self.settings.batch_size
        for indices in batches_by_length(texts, batch_size):
            batch = [texts[index] for index in indices]
            run = self._run(batch, in_parts=bool(self.joined))
            # A single intent (trained for its entities) is certain of every message it can read.
            scores.confidences[indices] = run.readable[:, None] if len(self.labels) == 1 else run.confidences
            for row, index in enumerate(indices):
                if self.entity_types and run.readable[row]:
                    scores.readings[index] = run.reading(row)
            if self.joined:
                # The best split points by the parts pooled from the whole message's states, read again alone.
                best = [
                    multi_intent.best_points(run.part_confidences[row, : 2 * len(points)], points, self.joined, self.labels)
                    if points else []
                    for row, points in enumerate(run.points)
                ]
                scores.log_pairs[indices], scores.cuts[indices] = multi_intent.log_part_scores(
                    read_alone, batch, best, self.joined, self.labels
                )
        return scores

    def confidences(self, texts: Sequence[str]) -> np.ndarray:
        """The intent confidences of `predict`."""
        return self.predict(texts).confidences

    def _run(self, texts: List[str], in_parts: bool = False) -> "_Run":
        """The network's outputs for `texts`; `in_parts`: also of the parts at each text's split points."""
        inputs = tokenize(self.tokenizer, texts, self.settings.max_length, return_tensors="np", padding=True)
        offsets, continues = inputs.pop("offset_mapping"), inputs.pop(WORD_CONTINUES) * self.whole_words
        points = [multi_intent.split_points(row) if in_parts else [] for row in offsets]
        mask = inputs["attention_mask"]
        part_mask = multi_intent.part_masks(offsets, mask, points) if in_parts else mask[:, None, :]
        spans, present = inputs.pop(WORD_NGRAM_SPANS), inputs[WORD_NGRAM_PRESENT]
        inputs[WORD_NGRAM_PRESENT] = word_ngrams_in_parts(spans, present, part_mask) if in_parts else present[:, None, :]
        if self.session is not None:
            feeds = {name: inputs[name].astype(np.int64) for name in self._session_inputs if name != onnx_network.PART_MASK}
            feeds[onnx_network.PART_MASK] = part_mask.astype(np.int64)
            confidences, tag_probabilities = self.session.run(None, feeds)
        else:
            tensors = {name: torch.from_numpy(values).to(self.network.device) for name, values in inputs.items()}
            with torch.inference_mode():
                outputs = self.network(**tensors, part_mask=torch.from_numpy(part_mask).to(self.network.device))
            confidences = outputs.confidences.float().cpu().numpy()
            tag_probabilities = outputs.tag_probabilities.float().cpu().numpy()
        # Nothing to read (`_readable`): no intent, all "none of them".
        readable = self._readable(texts, inputs["input_ids"], mask)
        confidences[~readable] = 0.0
        return _Run(confidences[:, 0], tag_probabilities, offsets, continues, points, confidences[:, 1:], readable)

    def _readable(self, texts: Sequence[str], input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Per text: whether any of its tokens is neither special ([CLS], [SEP], ...) nor unknown (emoji
        the vocabulary lacks), and it has a word or only marks the bot's examples taught (？？？, 😂: no)."""
        known_token = (attention_mask.astype(bool) & ~np.isin(input_ids, self._unreadable_ids)).any(axis=1)
        return known_token & wordless.says_something(texts, self._taught_marks)

    def save(self, directory: Path) -> None:
        """Write the network as `model.onnx` (int8 weights unless `quantize` is off) with its config,
        the tokenizer files and `bert_intent.json` (labels, settings, training summary)."""
        directory.mkdir(parents=True, exist_ok=True)
        metadata: Dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "labels": self.labels,
            "settings": {**self.settings.to_dict(), "model_name": portable(self.settings.model_name)},
            "training": self.summary,
            "calibration": self.calibration.to_dict(),
            "combinations": {"intents": self.combinations[0].to_dict(), "tags": self.combinations[1].to_dict()},
            "entity_types": [entity_type.to_dict() for entity_type in self.entity_types],
            "joined_intents": [intent.to_dict() for intent in self.joined],
            "multi_intent": self.decision.to_dict(),
            "whole_word_entities": self.whole_words,
            "tag_transitions": None if self.tag_transitions is None else self.tag_transitions.tolist(),
            "wordless_marks": self.wordless_marks,
        }
        if self.network is not None or self.session is not None:
            if self.network is None:
                raise ValueError("Only a model with its torch network (a trained or torch-loaded one) can be saved.")
            started = time.monotonic()
            metadata["parameters"] = onnx_network.export(
                self.network, [*self.tokenizer.model_input_names, WORD_NGRAMS, WORD_NGRAM_PRESENT], directory / NETWORK_FILE, self.settings.quantize
            )
            logger.info(
                "Saved the network as %s (%s weights, %.1f MB) in %.0f s.", NETWORK_FILE,
                "int8" if self.settings.quantize else "float32",
                (directory / NETWORK_FILE).stat().st_size / 1e6, time.monotonic() - started,
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
            labels, settings = list(metadata["labels"]), validate(dict(metadata["settings"]))
            entity_types = [EntityType.from_dict(values) for values in metadata.get("entity_types", [])]
            fitted: Dict[str, Any] = dict(  # what training fitted, besides the network's weights
                summary=dict(metadata.get("training", {})),
                calibration=Calibration.from_dict(metadata.get("calibration", {})),
                entity_types=entity_types,
                combinations=tuple(
                    Combination.from_dict(metadata.get("combinations", {}).get(part, prior.to_dict()))
                    for part, prior in (("intents", combination.INTENT_PRIOR), ("tags", combination.TAG_PRIOR))
                ),
                joined=[JoinedIntent.from_dict(values) for values in metadata.get("joined_intents", [])],
                decision=Decision.from_dict(metadata.get("multi_intent", {})),
                whole_words=bool(metadata.get("whole_word_entities", False)),
                tag_transitions=_tag_transitions(metadata.get("tag_transitions"), entities.tag_count(entity_types)),
                wordless_marks=str(metadata.get("wordless_marks", "")),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise ModelLoadError(
                f"Cannot read {metadata_path}: {error!r}. Retrain the model with `rasa train`."
            ) from error
        if version != FORMAT_VERSION:
            raise ModelLoadError(
                f"{metadata_path} is format {version}, but this bert-intent reads format {FORMAT_VERSION}: "
                "the model was saved by another version of bert-intent. Retrain it with `rasa train`."
            )
        if len(labels) == 1 and not entity_types:
            return cls(
                labels, settings, summary=fitted["summary"], calibration=fitted["calibration"],
                wordless_marks=fitted["wordless_marks"],
            )
        network_file = required(directory / NETWORK_FILE)
        load_segmenter()
        tokenizer = read(
            required(directory / TOKENIZER_FILE), lambda: AutoTokenizer.from_pretrained(directory, local_files_only=True)
        )
        if backend == "onnx":
            session = read(network_file, lambda: onnx_network.session(network_file, settings.cpu_threads))
            check_widths(network_file, onnx_network.output_widths(session), labels, entity_types)
            return cls(labels, settings, tokenizer, session=session, **fitted)
        config = read(
            required(directory / CONFIG_FILE), lambda: AutoConfig.from_pretrained(directory, local_files_only=True)
        )
        check_widths(directory / CONFIG_FILE, (config.num_labels, config.num_entity_tags), labels, entity_types)
        network = IntentNetwork.from_config(config)
        weights = read(network_file, lambda: onnx_network.torch_weights(network_file, metadata["parameters"]))
        read(network_file, lambda: _load_weights(network, weights))
        return cls(labels, settings, tokenizer, network.to(device), **fitted)


def _load_weights(network: IntentNetwork, weights: Dict[str, torch.Tensor]) -> None:
    """Every parameter from `weights` (the buffers are set from the metadata): a missing one is an error."""
    missing = sorted(set(dict(network.named_parameters())) - set(weights))
    if missing:
        raise KeyError(f"the file has no values for {', '.join(missing[:5])}")
    network.load_state_dict(weights, strict=False)


def _tag_transitions(values: Optional[List[List[float]]], num_tags: int) -> Optional[np.ndarray]:
    if values is None:
        return None
    transitions = np.asarray(values, dtype=np.float64)
    if transitions.shape != (num_tags, num_tags):
        raise ValueError(f"tag_transitions has shape {transitions.shape}, but the entity types give {num_tags} tags")
    return transitions
