"""Exceptions raised by bert-intent; each message says what went wrong and how to fix it."""


class BertIntentError(Exception):
    """Base class of every error bert-intent raises on purpose."""


class ConfigError(BertIntentError, ValueError):
    """A configuration key is unknown or has a value that is not allowed."""


class ModelLoadError(BertIntentError, OSError):
    """A pretrained checkpoint or a persisted model could not be loaded."""
