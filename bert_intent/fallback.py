"""Rasa's FallbackClassifier at each bot's own threshold: the one its BertIntentClassifier recommends.

Rasa's `FallbackClassifier` needs its `threshold` copied from the training log into `config.yml`, and
copied again whenever a new training recommends another. `bert_intent.BertFallbackClassifier` reads it
from the trained model instead: `BertIntentClassifier` puts its recommended threshold (fitted on the
bot's held-out examples, `confidence.py`) on every message it classifies, and this component falls back
below it. Everything else is Rasa's: `nlu_fallback` with the threshold as its confidence on top of the
ranking, and `ambiguity_threshold`. A `threshold` in the config still overrides the bot's own.
(Rasa checks the components a pipeline requires on the training graph only, where a fallback does not
run: this one checks, when a trained model is loaded, that a BertIntentClassifier runs before it, and a
message that still reaches it without a recommended threshold gets Rasa's default, with a warning.)
"""

import numbers
from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.fallback_classifier import AMBIGUITY_THRESHOLD_KEY, THRESHOLD_KEY, FallbackClassifier
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import INTENT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.utils.io import raise_warning

from bert_intent.component import RECOMMENDED_THRESHOLD, BertIntentClassifier


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=False)
class BertFallbackClassifier(FallbackClassifier):
    """`nlu_fallback` for messages whose top intent is below the threshold the bot's BertIntentClassifier
    recommends (or below `threshold`, when the config sets one), or ambiguous."""

    def __init__(self, config: Dict[Text, Any]) -> None:
        """Check the config (thresholds are numbers from 0 to 1); `create` calls this."""
        threshold, ambiguity = config.get(THRESHOLD_KEY), config.get(AMBIGUITY_THRESHOLD_KEY)
        if threshold is not None and not _probability(threshold):
            raise InvalidConfigException(
                f"BertFallbackClassifier: '{THRESHOLD_KEY}' must be a number from 0 to 1, or null for the "
                f"threshold training recommends, not {threshold!r}."
            )
        if not _probability(ambiguity):
            raise InvalidConfigException(
                f"BertFallbackClassifier: '{AMBIGUITY_THRESHOLD_KEY}' must be a number from 0 to 1, not {ambiguity!r}."
            )
        super().__init__(config)
        self._warned = False
        self._fallbacks: Dict[float, FallbackClassifier] = {}

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "BertFallbackClassifier":
        """The component of a pipeline that runs BertIntentClassifier before it, or sets `threshold`:
        otherwise no message would bring the threshold to fall back at (before the classifier: no intent)."""
        schema, node = execution_context.graph_schema, execution_context.node_name
        if config.get(THRESHOLD_KEY) is None and node in schema.nodes and not any(
            issubclass(before.uses, BertIntentClassifier) for before in schema.minimal_graph_schema([node]).nodes.values()
        ):
            raise InvalidConfigException(
                "BertFallbackClassifier falls back below the threshold BertIntentClassifier recommends, but no "
                "bert_intent.BertIntentClassifier comes before it in the pipeline. Put it after "
                "BertIntentClassifier in config.yml, or give it a 'threshold', and train again."
            )
        return cls(config)

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        """`threshold: null`: the bot's own; `ambiguity_threshold` as Rasa's FallbackClassifier."""
        return {**FallbackClassifier.get_default_config(), THRESHOLD_KEY: None}

    def process(self, messages: List[Message]) -> List[Message]:
        """Rasa's fallback for each message at its threshold (messages no classifier gave an intent
        field, as when training had no intents, are left as they are)."""
        for message in messages:
            if message.get(INTENT) is not None:
                self._fallback_at(self._threshold(message)).process([message])
        return messages

    def _fallback_at(self, threshold: float) -> FallbackClassifier:
        """Rasa's FallbackClassifier at `threshold`, made once per threshold (a loaded model has one)."""
        if threshold not in self._fallbacks:
            self._fallbacks[threshold] = FallbackClassifier({**self.component_config, THRESHOLD_KEY: threshold})
        return self._fallbacks[threshold]

    def _threshold(self, message: Message) -> float:
        """The configured threshold, else the one the message's classifier recommends, else Rasa's
        default (with a warning, once: no BertIntentClassifier gave the message its intent)."""
        configured = self.component_config.get(THRESHOLD_KEY)
        if configured is not None:
            return float(configured)
        if message.get(RECOMMENDED_THRESHOLD) is not None:
            return float(message.get(RECOMMENDED_THRESHOLD))
        default = float(FallbackClassifier.get_default_config()[THRESHOLD_KEY])
        if not self._warned:
            raise_warning(
                f"BertFallbackClassifier: a message's intent did not come from bert_intent.BertIntentClassifier "
                f"(with intent_classification on), so it has no recommended threshold; falling back below Rasa's "
                f"default {default}. Put BertIntentClassifier before it in the pipeline, or set 'threshold'."
            )
            self._warned = True
        return default


def _probability(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 <= value <= 1

