"""The network: a BERT-family encoder with its own intent head and tagger, the closed-form parts of
`heads.py`, and how they all combine (`forward`).

- `intent`: a linear layer over the mean of the encoder's token states (fine-tuned with the encoder).
  The mean suits checkpoints pretrained without a sentence task better than [CLS] and a new pooler.
- `tagger`: a linear layer over each token's state, scoring its entity tags (`entities.py`), trained
  jointly with the intent head (as in JointBERT, Chen et al. 2019).
- `ngrams` and `tag_ngrams`: the lexical intent and tag heads; `familiarity` and `centroids`: the
  lexical and semantic evidence for the open-set confidences (all in `heads.py`).

Each pair of heads is combined with weights fitted on the bot's held-out examples (`combination.py`);
each intent's open-set score adds the log of the message's familiarity to the intent and its cosine to
the intent's centroid, and the confidences are a softmax of the scores beside "none of them"
(`confidence.py`). Everything, n-gram hashing included, is tensor arithmetic on `input_ids`, so the
network exports to one ONNX graph.
"""

import inspect
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from torch import nn
from torch.nn import functional
from transformers import AutoModel, PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from bert_intent import combination, confidence
from bert_intent.combination import Combination
from bert_intent.confidence import Calibration
from bert_intent.hashing import ngram_buckets
from bert_intent.heads import Centroids, Familiarity, NgramHead, TagNgramHead

@dataclass
class IntentOutput(ModelOutput):
    """Per message (batch, intents): `encoder_log_probs` and `ngram_log_probs`, each intent head alone;
    `logits`, both combined (closed-set log-probabilities); `familiarity` and `similarity`, the open-set
    parts; `scores`, the open-set scores; `confidences`, what predictions use. Per token (batch, tokens,
    tags): `encoder_tag_log_probs` and `ngram_tag_log_probs`, each tag head alone; `tag_logits`, both
    combined; `tag_probabilities`, their softmax. `representation`: (batch, hidden), the normalised
    mean of the encoder's states."""

    logits: Optional[torch.Tensor] = None
    encoder_log_probs: Optional[torch.Tensor] = None
    ngram_log_probs: Optional[torch.Tensor] = None
    familiarity: Optional[torch.Tensor] = None
    similarity: Optional[torch.Tensor] = None
    scores: Optional[torch.Tensor] = None
    confidences: Optional[torch.Tensor] = None
    encoder_tag_log_probs: Optional[torch.Tensor] = None
    ngram_tag_log_probs: Optional[torch.Tensor] = None
    tag_logits: Optional[torch.Tensor] = None
    tag_probabilities: Optional[torch.Tensor] = None
    representation: Optional[torch.Tensor] = None


class IntentNetwork(nn.Module):
    """An encoder with its intent head and tagger, and the closed-form parts of `heads.py`, for `num_labels`
    intents and `num_tags` entity tags (see the module docstring; 1, only "outside", without entities)."""

    def __init__(self, encoder: PreTrainedModel, num_labels: int, num_tags: int = 1) -> None:
        super().__init__()
        if getattr(encoder, "pooler", None) is not None:  # [CLS] pooling is not used
            encoder.pooler = None
        self.encoder = encoder
        self.config: PretrainedConfig = encoder.config
        self.config.num_labels = num_labels
        self.config.num_entity_tags = num_tags
        # DistilBERT's encoder has no token types: a BERT tokenizer's all-zero column is not passed to it.
        self.takes_token_types = "token_type_ids" in inspect.signature(encoder.forward).parameters
        self.dropout = nn.Dropout(_dropout_rate(encoder.config))
        self.intent = nn.Linear(encoder.config.hidden_size, num_labels)
        self.tagger = nn.Linear(encoder.config.hidden_size, num_tags)
        self.ngrams = NgramHead(num_labels)
        self.familiarity = Familiarity(num_labels)
        self.tag_ngrams = TagNgramHead(num_tags)
        self.centroids = Centroids(num_labels, encoder.config.hidden_size)
        # Set by `configure` from what training fitted (the archive keeps them in its metadata).
        self.register_buffer("intent_weights", combination.INTENT_PRIOR.weights(), persistent=False)
        self.register_buffer("tag_weights", combination.TAG_PRIOR.weights(), persistent=False)
        self.register_buffer("calibration", Calibration().parameters(), persistent=False)

    @classmethod
    def from_pretrained(cls, model_name: str, num_labels: int, num_tags: int = 1, **kwargs: Any) -> "IntentNetwork":
        """The checkpoint's encoder (its pooler, MLM and other heads are dropped) with new heads."""
        return cls(AutoModel.from_pretrained(model_name, **kwargs), num_labels, num_tags)

    @classmethod
    def from_config(cls, config: PretrainedConfig) -> "IntentNetwork":
        """An untrained network of `config`'s shape (weights are loaded afterwards)."""
        return cls(AutoModel.from_config(config), config.num_labels, config.num_entity_tags)

    @property
    def device(self) -> torch.device:
        return self.intent.weight.device

    @property
    def is_gradient_checkpointing(self) -> bool:
        return self.encoder.is_gradient_checkpointing

    def gradient_checkpointing_enable(self, **kwargs: Any) -> None:
        """Called by transformers' Trainer when `gradient_checkpointing` is on."""
        self.encoder.gradient_checkpointing_enable(**kwargs)

    def configure(self, intents: Combination, tags: Combination, calibration: Calibration) -> None:
        """Combine the heads with these weights and compute the confidences with `calibration`."""
        self.intent_weights.copy_(intents.weights())
        self.tag_weights.copy_(tags.weights())
        self.calibration.copy_(calibration.parameters())

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: Optional[torch.Tensor] = None,
        # Named so Trainer passes the label columns on; the loss is Trainer's.
        labels: Optional[torch.Tensor] = None,
        entity_tags: Optional[torch.Tensor] = None,
        part_mask: Optional[torch.Tensor] = None,
        word_ngrams: Optional[torch.Tensor] = None,
        word_ngram_present: Optional[torch.Tensor] = None,
    ) -> IntentOutput:
        """The outputs of `IntentOutput`. With `part_mask` (batch, parts, tokens), the intent heads read
        each part of a message alone (the tokens its row marks) and the per-message outputs are
        (batch, parts, ...): the encoder runs once per message, and its states are pooled per part. With
        `word_ngrams` and `word_ngram_present` (`encoding.tokenize`, the latter per part with `part_mask`:
        `encoding.word_ngrams_in_parts`) the n-gram head also reads the n-grams inside words."""
        inputs: Dict[str, torch.Tensor] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None and self.takes_token_types:
            inputs["token_type_ids"] = token_type_ids
        states = self.encoder(**inputs).last_hidden_state
        reads = attention_mask.unsqueeze(1) if part_mask is None else part_mask  # (batch, parts, tokens)
        parts = reads.shape[1]
        weights = reads.unsqueeze(-1).to(states.dtype)
        # A product and a sum, not a matrix product, so that int8 quantization leaves the pooling exact.
        pooled = ((states.unsqueeze(1) * weights).sum(dim=2) / weights.sum(dim=2).clamp(min=1)).flatten(0, 1)
        encoder_log_probs = functional.log_softmax(self.intent(self.dropout(pooled)).float(), dim=-1)
        part_ids = input_ids.unsqueeze(1).expand(-1, parts, -1).flatten(0, 1)
        buckets, present = ngram_buckets(part_ids, reads.flatten(0, 1))
        ngram_buckets_, ngram_present = _with_word_ngrams(buckets, present, word_ngrams, word_ngram_present, parts)
        ngram_log_probs = functional.log_softmax(self.ngrams(ngram_buckets_, ngram_present).float(), dim=-1)
        logits = combination.combine(encoder_log_probs, ngram_log_probs, self.intent_weights)
        representation = functional.normalize(pooled.float(), dim=-1)
        familiarity = self.familiarity(buckets, present)
        similarity = self.centroids(representation)
        scores = confidence.open_scores(logits, familiarity, similarity, self.calibration)
        encoder_tag_log_probs = functional.log_softmax(self.tagger(self.dropout(states)).float(), dim=-1)
        tag_ngram_logits = self.tag_ngrams(input_ids, attention_mask)
        ngram_tag_log_probs = functional.log_softmax(tag_ngram_logits.float(), dim=-1)
        tag_logits = combination.combine(encoder_tag_log_probs, ngram_tag_log_probs, self.tag_weights)
        per_message = dict(
            logits=logits,
            encoder_log_probs=encoder_log_probs,
            ngram_log_probs=ngram_log_probs,
            familiarity=familiarity,
            similarity=similarity,
            scores=scores,
            confidences=confidence.confidences(scores, self.calibration),
            representation=representation,
        )
        if part_mask is not None:
            per_message = {name: value.reshape(-1, parts, int(value.shape[-1])) for name, value in per_message.items()}
        return IntentOutput(
            **per_message,
            encoder_tag_log_probs=encoder_tag_log_probs,
            ngram_tag_log_probs=ngram_tag_log_probs,
            tag_logits=tag_logits,
            tag_probabilities=tag_logits.exp(),
        )

    def fit_closed_form(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        label_ids: Sequence[int],
        balanced: bool,
        unknown_token_id: Optional[int],
        tags: Optional[torch.Tensor] = None,
        ignored_tag: int = -100,
        word_ngrams: Optional[torch.Tensor] = None,
        word_ngram_present: Optional[torch.Tensor] = None,
    ) -> None:
        """Fit the n-gram head (on the n-grams inside words too, with `word_ngrams`) and the familiarity
        table (with several intents) and the tag n-gram head (with `tags`, one per token; `ignored_tag`
        marks tokens without one) on the (padded) training batch. The network must be on the CPU, with
        the batch."""
        if self.config.num_labels > 1:
            buckets, present = ngram_buckets(input_ids, attention_mask)
            _, readable = ngram_buckets(input_ids, attention_mask * (input_ids != unknown_token_id))
            self.ngrams.fit(*_with_word_ngrams(buckets, present, word_ngrams, word_ngram_present, 1), label_ids, balanced)
            self.familiarity.fit(buckets, readable, label_ids)
        if tags is not None:
            self.tag_ngrams.fit(input_ids, attention_mask, tags, ignored_tag)


def _with_word_ngrams(
    buckets: torch.Tensor, present: torch.Tensor,
    word_ngrams: Optional[torch.Tensor], word_ngram_present: Optional[torch.Tensor], parts: int,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The n-gram head's buckets and presence ((batch x parts, n-grams) each): the message's n-grams and,
    given, those inside its words (`word_ngram_present` (batch, n-grams), or (batch, parts, n-grams))."""
    if word_ngrams is None or word_ngram_present is None:
        return buckets, present
    word_present = word_ngram_present if word_ngram_present.dim() == 3 else word_ngram_present.unsqueeze(1)
    word_present = word_present.expand(-1, parts, -1).flatten(0, 1).to(present.dtype)
    word_buckets = word_ngrams.unsqueeze(1).expand(-1, parts, -1).flatten(0, 1)
    return torch.cat([buckets, word_buckets], dim=1), torch.cat([present, word_present], dim=1)


def _dropout_rate(config: PretrainedConfig) -> float:
    """The encoder's own dropout rate, for the heads: `hidden_dropout_prob` in BERT, RoBERTa, ALBERT and
    ELECTRA configs, `dropout` in DistilBERT's; 0.1 (BERT's) where a config names neither."""
    for name in ("hidden_dropout_prob", "dropout"):
        rate = getattr(config, name, None)
        if isinstance(rate, (int, float)):
            return float(rate)
    return 0.1
