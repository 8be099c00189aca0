"""The files a saved model is made of, and the errors that say which of them is missing, damaged or
from another model."""

from pathlib import Path
from typing import Callable, Sequence, Tuple, TypeVar

from bert_intent import entities, onnx_network
from bert_intent.entities import EntityType
from bert_intent.errors import ModelLoadError

METADATA_FILE = "bert_intent.json"
NETWORK_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
CONFIG_FILE = "config.json"
# 11: the n-grams inside words are hashed at tokenization (inputs word_ngrams, word_ngram_present), not in the graph;
# 8: the network reads a message's parts (input part_mask); 7: the closed-form heads as named modules (parameter names changed); 6: heads' weights fitted per bot, centroids, open-set softmax confidences; 5: the entity head;
# 4: calibrated, familiarity-aware confidences; 3: IntentNetwork (encoder, intent and n-gram heads).
FORMAT_VERSION = 11

_RETRAIN = "Use the complete .tar.gz that `rasa train` wrote, or retrain with `rasa train`."

_T = TypeVar("_T")


def required(path: Path) -> Path:
    """`path`, which must be a file of the saved model."""
    if not path.is_file():
        raise ModelLoadError(
            f"{path} is missing, so the model cannot be loaded (was the model archive copied or unpacked "
            f"incompletely?). {_RETRAIN}"
        )
    return path


def read(path: Path, reader: Callable[[], _T]) -> _T:
    """Run `reader`, turning any failure into an error that names `path`."""
    try:
        return reader()
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, *onnx_network.READ_ERRORS) as error:
        raise ModelLoadError(f"Cannot load {path}: {error}. The file is damaged or not from this model. {_RETRAIN}") from error


def check_widths(path: Path, widths: Tuple[int, int], labels: Sequence[str], entity_types: Sequence[EntityType]) -> None:
    """The network scores as many intents and entity tags as the metadata lists."""
    expected = (len(labels), entities.tag_count(entity_types))
    if tuple(widths) != expected:
        raise ModelLoadError(
            f"{path} scores {widths[0]} intents and {widths[1]} entity tags, but {METADATA_FILE} lists "
            f"{expected[0]} intents and {expected[1]} entity tags: the files come from different models. "
            + _RETRAIN
        )


def portable(model_name: str) -> str:
    """What the archive records of `model_name`: a Hub id as it is, a local checkpoint directory by its
    name only (the training machine's paths stay on it)."""
    return Path(model_name).name if Path(model_name).is_dir() else model_name
