"""Where training starts from: a pretrained checkpoint's tokenizer and encoder, or a small BERT built
from scratch with a vocabulary of the characters in the training texts.

A scratch BERT needs no download, so it trains anywhere; it learns only from the bot's own examples, so
it is less accurate than a fine-tuned pretrained checkpoint.
"""

import logging
import re
import string
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import transformers
from packaging.version import Version
from tokenizers import models
from transformers import AutoTokenizer, BertConfig, BertModel, BertTokenizerFast, PreTrainedTokenizerBase

from bert_intent.errors import ModelLoadError
from bert_intent.network import IntentNetwork
from bert_intent.settings import Settings

logger = logging.getLogger(__name__)

# Shapes of Google's compact BERTs ("Well-Read Students Learn Better", Turc et al. 2019).
SIZE_PRESETS: Dict[str, Dict[str, int]] = {
    "tiny": {"num_hidden_layers": 2, "hidden_size": 128, "num_attention_heads": 2, "intermediate_size": 512},
    "mini": {"num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 4, "intermediate_size": 1024},
    "small": {"num_hidden_layers": 4, "hidden_size": 512, "num_attention_heads": 8, "intermediate_size": 2048},
}
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# transformers 5 changed how a tokenizer is built from a vocabulary and some of Trainer's arguments.
TRANSFORMERS_5 = Version(transformers.__version__).major >= 5


def bert_tokenizer(vocabulary: Dict[str, int]) -> BertTokenizerFast:
    """BERT's fast tokenizer over `vocabulary` (token: id). transformers 5 builds it from the dict and
    ignores `vocab_file=`; transformers 4 (Python 3.8 and 3.9) reads only a vocab.txt."""
    if TRANSFORMERS_5:
        return BertTokenizerFast(vocab=vocabulary)
    with tempfile.TemporaryDirectory(prefix="bert-intent-vocabulary-") as directory:
        path = Path(directory) / "vocab.txt"
        path.write_text("".join(f"{token}\n" for token in sorted(vocabulary, key=vocabulary.__getitem__)), encoding="utf-8")
        return BertTokenizerFast(vocab_file=str(path))


def character_vocabulary(texts: Sequence[str]) -> Dict[str, int]:
    """Special tokens plus every character of `texts` as BERT's tokenizer splits them.

    Chinese characters and punctuation become single tokens; other words are spelled with a first
    character and `##` continuations, so no character of the training texts becomes `[UNK]`.
    """
    splitter = bert_tokenizer({token: index for index, token in enumerate(SPECIAL_TOKENS)})
    normalizer = splitter.backend_tokenizer.normalizer
    pre_tokenizer = splitter.backend_tokenizer.pre_tokenizer
    pieces = set()
    for text in texts:
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)):
            pieces.add(word[0])
            pieces.update("##" + character for character in word[1:])
    return {token: index for index, token in enumerate(SPECIAL_TOKENS + sorted(pieces))}


def build_from_scratch(
    texts: Sequence[str], labels: List[str], size: str, max_length: int, num_tags: int = 1
) -> Tuple[BertTokenizerFast, IntentNetwork]:
    """A tokenizer for `texts` and a randomly initialised `size` BERT with heads for `labels` and
    `num_tags` entity tags."""
    tokenizer = bert_tokenizer(character_vocabulary(texts))
    config = BertConfig(vocab_size=len(tokenizer.get_vocab()), max_position_embeddings=max_length, **SIZE_PRESETS[size])
    return tokenizer, IntentNetwork(BertModel(config), len(labels), num_tags)


def load_pretrained(
    model_name: str, labels: Sequence[str], num_tags: int
) -> Tuple[PreTrainedTokenizerBase, IntentNetwork]:
    """Load a checkpoint's fast tokenizer and its encoder with new heads for `labels` and `num_tags` entity tags.

    Weights come only from safetensors files and no code from the checkpoint is run.
    """
    _check_model_name(model_name)
    previous_verbosity = transformers.logging.get_verbosity()
    # The "newly initialized classifier weights" warning is expected here, so only errors are shown.
    transformers.logging.set_verbosity_error()
    try:
        try:
            tokenizer = _load_tokenizer(model_name)
        except _LOAD_ERRORS as error:
            raise ModelLoadError(_tokenizer_failure(model_name, error)) from error
        try:
            network = IntentNetwork.from_pretrained(
                model_name, len(labels), num_tags, use_safetensors=True, trust_remote_code=False
            )
        except _LOAD_ERRORS as error:
            raise ModelLoadError(_weights_failure(model_name, error)) from error
    finally:
        transformers.logging.set_verbosity(previous_verbosity)
    if getattr(network.config, "is_encoder_decoder", False):
        raise ModelLoadError(
            f"BertIntentClassifier: '{model_name}' is an encoder-decoder model ({network.config.model_type}), "
            "but intents and entities are read from an encoder's token states. Set model_name to an encoder "
            "checkpoint: BERT (like 'bert-base-chinese'), RoBERTa, ALBERT, ELECTRA or DistilBERT."
        )
    if _reads_left_to_right(network):
        logger.warning(
            "BertIntentClassifier: '%s' reads text only left to right (a decoder-only model like GPT's): each "
            "token sees none of the words after it, so intents and entities are read with half of the context. "
            "It trains, but a bidirectional encoder usually serves both better: BERT (like 'bert-base-chinese'), "
            "RoBERTa, ALBERT, ELECTRA or DistilBERT.", model_name,
        )
    _fill_vocabulary_holes(tokenizer)
    return tokenizer, network


def _reads_left_to_right(network: IntentNetwork) -> bool:
    """Whether the encoder's attention is causal: the first token's state stays the same when the last
    token changes (measured, so it holds for any architecture, and for a BERT configured as a decoder)."""
    last = network.config.vocab_size - 1
    input_ids = torch.tensor([[last - 2, last - 1], [last - 2, last]])
    training = network.encoder.training
    network.encoder.eval()  # without dropout
    with torch.inference_mode():
        states = network.encoder(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).last_hidden_state
    network.encoder.train(training)
    return torch.allclose(states[0, 0], states[1, 0])


# What transformers raises for a checkpoint it cannot find or read (a converter it lacks: ImportError).
_LOAD_ERRORS = (OSError, ValueError, ImportError)


def _load_tokenizer(model_name: str) -> PreTrainedTokenizerBase:
    """The checkpoint's fast tokenizer; lower-casing Latin letters where its vocabulary has them only so."""
    tokenizer = AutoTokenizer.from_pretrained(model_name, use_fast=True, trust_remote_code=False)
    if _reads_capitals_only_in_lower_case(tokenizer):
        logger.info(
            "The tokenizer of '%s' keeps capital letters, but its vocabulary has almost none (every word "
            "with one would read as [UNK]): Latin letters are lower-cased, as the vocabulary was built.", model_name,
        )
        tokenizer = AutoTokenizer.from_pretrained(model_name, use_fast=True, trust_remote_code=False, do_lower_case=True)
    return tokenizer


def _tokenizer_failure(model_name: str, error: Exception) -> str:
    """What to do when a checkpoint's tokenizer does not load: one shipped only as a SentencePiece model
    needs the converter; otherwise the checkpoint was most often not reachable."""
    sentencepiece_model = _file_without(model_name, "*.model", "tokenizer.json")
    if sentencepiece_model is None:
        return _not_reachable(model_name, error)
    return (
        f"BertIntentClassifier could not read the tokenizer of '{model_name}': it has only the SentencePiece "
        f"model {sentencepiece_model} and no tokenizer.json, and transformers could not convert it here ({error}). "
        'Install the converter with `pip install "sentencepiece<0.2.3"` (0.2.3 needs a newer protobuf than '
        f"Rasa 3.6 allows), or convert it once in another environment: {_resave(model_name, 'AutoTokenizer')} "
        "writes tokenizer.json beside it. The trained model keeps the converted tokenizer, so serving needs neither."
    )


def _weights_failure(model_name: str, error: Exception) -> str:
    """What to do when a checkpoint's weights do not load: pickled weights only need converting once by
    someone who trusts them; otherwise the checkpoint was most often not reachable."""
    pickled = _file_without(model_name, "pytorch_model*.bin", "*.safetensors")
    if pickled is None:
        return _not_reachable(model_name, error)
    return (
        f"BertIntentClassifier could not load the weights of '{model_name}': it has them only as {pickled}, a "
        "pickle file, and bert-intent reads weights from model.safetensors only (opening a pickle can run code "
        "hidden in it). Download the checkpoint's safetensors weights where it is published, or, if you trust "
        f"where the file came from, convert it once: {_resave(model_name, 'AutoModel')} writes model.safetensors beside it."
    )


def _resave(model_name: str, auto_class: str) -> str:
    """The command that reads the checkpoint with transformers' `auto_class` and saves it back in today's format."""
    return f"`python -c \"from transformers import {auto_class}; {auto_class}.from_pretrained('{model_name}').save_pretrained('{model_name}')\"`"


def _file_without(model_name: str, pattern: str, modern: str) -> Optional[str]:
    """The first file matching `pattern` in a checkpoint directory with no file matching `modern` (the
    format transformers reads without converting), if there is one."""
    directory = Path(model_name)
    if not directory.is_dir() or any(directory.glob(modern)):
        return None
    return next((path.name for path in sorted(directory.glob(pattern))), None)


def _not_reachable(model_name: str, error: Exception) -> str:
    """The advice for a checkpoint that could not be fetched or read: most often an unreachable Hub."""
    return (
        f"BertIntentClassifier could not load the pretrained model '{model_name}': {error}\n"
        "If this machine is offline or the Hugging Face Hub is blocked, download the checkpoint "
        "where the Hub is reachable (e.g. `hf download bert-base-chinese "
        "--local-dir ./bert-base-chinese`), copy the folder here and set `model_name` to that "
        "directory, or set the HF_ENDPOINT environment variable to a mirror. Weights are read only "
        "from model.safetensors (never from pickled pytorch_model.bin files)."
    )


def _reads_capitals_only_in_lower_case(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether most capital letters A-Z read as [UNK] while their lower-case letters are tokens: a
    case-keeping tokenizer over an uncased vocabulary (bert-base-chinese's tokenizer_config says
    `do_lower_case: false`, and its vocabulary, built lower-cased, has 4 of the 26 capitals)."""
    unknown = [tokenizer.unk_token]
    lost = [
        letter for letter in string.ascii_uppercase
        if tokenizer.tokenize(letter) == unknown and tokenizer.tokenize(letter.lower()) != unknown
    ]
    return len(lost) > len(string.ascii_uppercase) // 2


def _fill_vocabulary_holes(tokenizer: PreTrainedTokenizerBase) -> None:
    """Give each id a WordPiece vocabulary skips a placeholder token of its own.

    A vocab.txt that lists a token twice (bert-base-chinese's lists 53) leaves the first id without a
    token. No text ever tokenizes to it, but the tokenizers library then warns at every save that the
    vocabulary "could be corrupted" (huggingface/tokenizers#1085). The placeholders are bracketed, and
    BERT's pre-tokenizer splits brackets off, so no text tokenizes to them either.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not isinstance(backend.model, models.WordPiece):
        return
    vocabulary = backend.get_vocab(with_added_tokens=False)
    holes = set(range(max(vocabulary.values(), default=-1) + 1)) - set(vocabulary.values())
    if holes:
        vocabulary.update({f"[unused-duplicate-{index}]": index for index in sorted(holes)})
        backend.model = models.WordPiece(
            vocabulary, unk_token=backend.model.unk_token, continuing_subword_prefix=backend.model.continuing_subword_prefix,
            max_input_chars_per_word=backend.model.max_input_chars_per_word,
        )


# A Hugging Face model id: "name" or "organisation/name".
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?")


def _check_model_name(model_name: str) -> None:
    """Accept a checkpoint directory (with its config.json) or a Hub id; anything else (a file, a URL, a
    missing path, a folder of another format) is an error."""
    if Path(model_name).is_dir():
        if not (Path(model_name) / "config.json").is_file():
            raise ModelLoadError(
                f"BertIntentClassifier: '{model_name}' has no config.json, so it is not a Hugging Face checkpoint "
                "(a folder downloaded from the Hub or written by save_pretrained). An original TensorFlow BERT "
                "(bert_config.json, bert_model.ckpt) needs converting first; Google's Chinese BERT is on the Hub, "
                "converted, as 'bert-base-chinese'."
            )
        return
    if Path(model_name).exists() or ".." in model_name or not _HUB_ID.fullmatch(model_name):
        raise ModelLoadError(
            f"BertIntentClassifier: model_name '{model_name}' is neither an existing checkpoint directory "
            "nor a Hugging Face model id (like 'bert-base-chinese' or 'organisation/name'). Set it to the "
            "directory that holds config.json, the tokenizer files and model.safetensors, or to a model id."
        )


def starting_point(
    texts: Sequence[str], labels: List[str], num_tags: int, settings: Settings
) -> Tuple[PreTrainedTokenizerBase, IntentNetwork, str]:
    """The tokenizer and new network training starts from (`model_name`'s, or with `pretrained: false`
    a `scratch_size` BERT), and a description of them for the log."""
    if settings.pretrained:
        tokenizer, network = load_pretrained(settings.model_name, labels, num_tags)
        return tokenizer, network, f"'{settings.model_name}'"
    tokenizer, network = build_from_scratch(texts, labels, settings.scratch_size, settings.max_length, num_tags)
    return tokenizer, network, f"a {settings.scratch_size} BERT from scratch"
