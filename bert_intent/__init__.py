"""bert-intent: a fine-tuned BERT intent classifier for Rasa Open Source 3.6.

`bert_intent.BertIntentClassifier` is the Rasa component, and `bert_intent.BertFallbackClassifier` Rasa's
FallbackClassifier at the threshold it recommends. They are imported on first use, so the Rasa-free
modules (settings, model, training) can be used without importing Rasa.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["BertFallbackClassifier", "BertIntentClassifier", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "BertIntentClassifier":
        from bert_intent.component import BertIntentClassifier

        return BertIntentClassifier
    if name == "BertFallbackClassifier":
        from bert_intent.fallback import BertFallbackClassifier

        return BertFallbackClassifier
    raise AttributeError(f"module 'bert_intent' has no attribute '{name}'")
