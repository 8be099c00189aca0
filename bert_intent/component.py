"""The Rasa 3.6 graph component: a thin adapter between Rasa messages and `IntentModel`."""

import contextlib
import hashlib
import logging
import unicodedata
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Text, Type

import numpy as np

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.constants import TOKENS_NAMES
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.nlu.tokenizers.tokenizer import Token
from rasa.shared.exceptions import InvalidConfigException, RasaException
from rasa.shared.nlu.constants import ENTITIES, INTENT, INTENT_RANKING_KEY, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from rasa.shared.utils.io import raise_warning

from bert_intent import multi_intent, settings as bert_settings
from bert_intent.data_checks import not_joined_warning, training_data_warnings
from bert_intent.errors import BertIntentError, ConfigError
from bert_intent.model import IntentModel
from bert_intent.training import fine_tune

logger = logging.getLogger(__name__)

# Unicode categories with nothing to classify: control, format (zero-width), surrogate, separators.
_INVISIBLE = ("Cc", "Cf", "Cs", "Zs", "Zl", "Zp")

# The message property that carries the recommended FallbackClassifier threshold to BertFallbackClassifier
# (not part of the parse result).
RECOMMENDED_THRESHOLD = "bert_intent_recommended_threshold"

# Keys Rasa adds to the config itself (`rasa train --finetune` adds this one).
_RASA_KEYS = ("finetuning_epoch_fraction",)


class BertIntentException(RasaException):
    """A bert-intent error Rasa reports as one line (a RasaException is printed, not traced)."""


@contextlib.contextmanager
def _reported_to_rasa() -> Iterator[None]:
    """Re-raise bert-intent's errors as the Rasa exceptions its CLI prints cleanly."""
    try:
        yield
    except ConfigError as error:
        raise InvalidConfigException(str(error)) from error
    except BertIntentError as error:
        raise BertIntentException(str(error)) from error


@DefaultV1Recipe.register(
    [DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR],
    is_trainable=True,
)
class BertIntentClassifier(GraphComponent, IntentClassifier, EntityExtractorMixin):
    """Fine-tunes a BERT-family checkpoint on the intent examples and their entity annotations, then
    classifies raw message text and extracts its entities."""

    @classmethod
    def required_components(cls) -> List[Type]:
        """Works on the raw text: no tokenizer or featurizer is needed before it."""
        return []

    @staticmethod
    def required_packages() -> List[Text]:
        """Python packages the component needs."""
        return ["torch", "transformers", "onnxruntime"]

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """The defaults of every config key (see the README for what each does)."""
        return dict(bert_settings.DEFAULTS)

    @classmethod
    def fingerprint_addon(cls, config: Dict[str, Any]) -> Optional[str]:
        """Make Rasa retrain when this package's code or a local `model_name` checkpoint changes.

        Rasa's cache fingerprints only this class's source; the training code lives in other modules.
        """
        digest = hashlib.sha256()
        for source in sorted(Path(__file__).parent.glob("*.py")):
            digest.update(source.read_bytes())
        checkpoint = Path(str(config.get("model_name", "")))
        if checkpoint.is_dir():
            for file in sorted(path for path in checkpoint.rglob("*") if path.is_file()):
                stat = file.stat()
                digest.update(f"{file.relative_to(checkpoint)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        return digest.hexdigest()

    def __init__(
        self,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
    ) -> None:
        """Validate the config; the component is untrained until `train` or `load` gives it a model."""
        own_config = {key: value for key, value in config.items() if key not in _RASA_KEYS}
        with _reported_to_rasa():
            self.config = bert_settings.validate(own_config)
        # Rasa scales a configured `epochs` itself; training scales the epochs it chooses with `epochs: 0`.
        self._epoch_fraction = float(config.get("finetuning_epoch_fraction", 1.0))
        self._model_storage = model_storage
        self._resource = resource
        self._model: Optional[IntentModel] = None

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "BertIntentClassifier":
        """Create an untrained component; invalid config is rejected here."""
        return cls(config, model_storage, resource)

    @classmethod
    def load(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> "BertIntentClassifier":
        """Load the trained model from the Rasa model archive (an untrained one if none was saved).

        `rasa train --finetune` gets the torch network (to train on); otherwise `inference_backend` decides.
        """
        component = cls(config, model_storage, resource)
        with _reported_to_rasa():
            device = bert_settings.resolve_device(component.config.device)
            backend = (
                "torch"
                if execution_context.is_finetuning
                else bert_settings.resolve_backend(component.config.inference_backend, device)
            )
            try:
                with model_storage.read_from(resource) as model_dir:
                    component._model = IntentModel.load(model_dir, device, backend)
            except ValueError:  # from read_from: training persisted nothing (no intents)
                logger.debug("No trained BertIntentClassifier in resource '%s'.", resource.name)
        return component

    def train(self, training_data: TrainingData) -> Resource:
        """Train on the examples that have both text and an intent (with their entity annotations),
        then persist the model.

        Under `rasa train --finetune` Rasa loads the previous model first, and training continues it.
        """
        examples = [
            (text, message.get(INTENT), message.get(ENTITIES) or [])
            for text, message in ((_text(message), message) for message in training_data.intent_examples)
            if text
        ]
        if not examples:
            raise_warning(
                "BertIntentClassifier: the training data has no intent examples with text, so no "
                "intent classifier was trained and messages will get no intent."
            )
            return self._resource
        texts, intents, annotations = zip(*examples)
        settings = self._with_tokenizer_split_symbol(training_data)
        joined, not_joined = multi_intent.joined_intents(intents, settings.intent_split_symbol)
        joined_names = {intent.name for intent in joined}
        single = [(text, intent) for text, intent in zip(texts, intents) if intent not in joined_names]
        warnings = training_data_warnings(*zip(*single))
        if not_joined:
            warnings.append(not_joined_warning(not_joined, settings.intent_split_symbol))
        for warning in warnings:
            raise_warning(f"BertIntentClassifier: {warning}")
        with _reported_to_rasa():
            self._model = fine_tune(
                texts, intents, settings, start_from=self._model, epoch_fraction=self._epoch_fraction,
                annotations=annotations,
            )
        with self._model_storage.write_to(self._resource) as model_dir:
            self._model.save(model_dir)
        return self._resource

    def _with_tokenizer_split_symbol(self, training_data: TrainingData) -> bert_settings.Settings:
        """The settings, with the `intent_split_symbol` of a tokenizer before this component where one
        splits intent names (Rasa's `intent_tokenization_flag`): multi-intents are then declared as that
        tokenizer says, as for DIET."""
        symbol = _split_symbol(training_data.intent_examples)
        if symbol is None or symbol == self.config.intent_split_symbol:
            return self.config
        logger.info("BertIntentClassifier: multi-intents are joined by '%s', the tokenizer's intent_split_symbol.", symbol)
        return self.config.replace(intent_split_symbol=symbol)

    def process(self, messages: List[Message]) -> List[Message]:
        """Set `intent` and `intent_ranking` on every message and add its entities to `entities`,
        scoring all texts in batches.

        Each confidence is the calibrated probability of that intent; the ranking sums to at most 1,
        the rest meaning "none of them" (large for messages unlike the training data). The threshold
        training recommends for them goes with each message, for BertFallbackClassifier."""
        if self._model is None:
            return messages
        texts = [_text(message) for message in messages]
        scored = [index for index, text in enumerate(texts) if text]
        predictions = self._model.predict([texts[index] for index in scored])
        confidences = dict(zip(scored, predictions.confidences))
        found = dict(zip(scored, predictions.entities))
        threshold = float(self._model.calibration.threshold)  # a Python float: Rasa serialises messages
        for index, message in enumerate(messages):
            if self.config.intent_classification:
                # An empty or unreadable message (every confidence 0) gets no intent and an empty ranking.
                ranking = self._ranking(confidences[index]) if index in confidences and confidences[index].any() else []
                intent = ranking[0] if ranking else {"name": None, "confidence": 0.0}
                message.set(INTENT, intent, add_to_output=True)
                message.set(INTENT_RANKING_KEY, ranking[: self.config.ranking_length or None], add_to_output=True)
                message.set(RECOMMENDED_THRESHOLD, threshold)
            if self._model.entity_types:
                entities = self.add_extractor_name(found.get(index, []))
                message.set(ENTITIES, message.get(ENTITIES, []) + entities, add_to_output=True)
                if not message.get(TOKENS_NAMES[TEXT]):
                    message.set(TOKENS_NAMES[TEXT], _character_tokens(texts[index]))
        return messages

    def _ranking(self, confidences: np.ndarray) -> List[Dict[str, Any]]:
        """Intents by descending confidence, as Python floats (numpy floats break `rasa test nlu`)."""
        ranking = [
            {"name": label, "confidence": float(value)} for label, value in zip(self._model.intent_names, confidences)
        ]
        return sorted(ranking, key=lambda entry: -entry["confidence"])


def _text(message: Message) -> str:
    """The message's text (entity offsets refer to it as it is); empty when it is not a string or has
    nothing visible (only whitespace, control, format/zero-width or lone surrogate characters)."""
    text = message.get(TEXT)
    if not isinstance(text, str) or all(unicodedata.category(character) in _INVISIBLE for character in text):
        return ""
    return text


def _split_symbol(examples: List[Message]) -> Optional[str]:
    """What a tokenizer set between the first two parts of an intent name it split; None where no
    tokenizer split one (none in the pipeline, `intent_tokenization_flag` off, or no name to split)."""
    for message in examples:
        parts = message.get(TOKENS_NAMES[INTENT]) or []
        if len(parts) > 1:
            return message.get(INTENT)[parts[0].end : parts[1].start] or None
    return None


def _character_tokens(text: str) -> List[Token]:
    """One token per visible character: what `rasa test nlu` scores entities on when the pipeline has
    no tokenizer (Chinese has no spaces, and every entity boundary is a character boundary)."""
    return [
        Token(character, start) for start, character in enumerate(text)
        if unicodedata.category(character) not in _INVISIBLE
    ]
