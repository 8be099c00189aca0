"""A small BERT initialised from scratch, with a vocabulary of the characters in the training texts.

It needs no download, so it trains anywhere; it learns only from the bot's own examples, so it is
less accurate than a fine-tuned pretrained checkpoint.
"""

from typing import Dict, List, Sequence, Tuple

from transformers import BertConfig, BertModel, BertTokenizerFast

from bert_intent.network import IntentNetwork

# Shapes of Google's compact BERTs ("Well-Read Students Learn Better", Turc et al. 2019).
SIZE_PRESETS: Dict[str, Dict[str, int]] = {
    "tiny": {"num_hidden_layers": 2, "hidden_size": 128, "num_attention_heads": 2, "intermediate_size": 512},
    "mini": {"num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 4, "intermediate_size": 1024},
    "small": {"num_hidden_layers": 4, "hidden_size": 512, "num_attention_heads": 8, "intermediate_size": 2048},
}
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def character_vocabulary(texts: Sequence[str]) -> Dict[str, int]:
    """Special tokens plus every character of `texts` as BERT's tokenizer splits them.

    Chinese characters and punctuation become single tokens; other words are spelled with a first
    character and `##` continuations, so no character of the training texts becomes `[UNK]`.
    """
    # transformers 5 builds the tokenizer from `vocab=` (a dict); `vocab_file=` would be ignored.
    splitter = BertTokenizerFast(vocab={token: index for index, token in enumerate(SPECIAL_TOKENS)})
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
    tokenizer = BertTokenizerFast(vocab=character_vocabulary(texts))
    config = BertConfig(vocab_size=len(tokenizer.get_vocab()), max_position_embeddings=max_length, **SIZE_PRESETS[size])
    return tokenizer, IntentNetwork(BertModel(config), len(labels), num_tags)
