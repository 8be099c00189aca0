"""The network: a BERT-family encoder with two intent heads whose votes are multiplied, and an entity head.

- `intent`: a linear layer over the mean of the encoder's token states (fine-tuned with the encoder).
  The mean suits checkpoints pretrained without a sentence task better than [CLS] and a new pooler.
- `ngrams`: a linear model over the message's token 1- to 4-grams (for Chinese, character n-grams),
  hashed into buckets and weighted TF-IDF style, fitted in closed form with scikit-learn's
  LogisticRegression before the encoder trains. With a handful of examples per intent such a keyword
  model is strong where a fine-tuned encoder is still weak (it is what Rasa's DIET gets from its
  sparse character n-gram features).

- `tagger`: a linear layer over each token's state, scoring its entity tags (`entities.py`), trained
  jointly with the intent head (as in JointBERT, Chen et al. 2019).
- `tag_ngrams`: a linear model over each token's neighbourhood (the token ids and short n-grams up to
  two tokens away, hashed), fitted in closed form like the intent n-gram head: the lexical features a
  CRF tagger uses, strong with few examples. The tag scores combine both as the intent heads do.

The network's intent logits are the sum of both heads' log-probabilities, the encoder's divided by
`ENCODER_TEMPERATURE` (a fine-tuned encoder is far surer of itself than it is right on new messages).

Open world: each intent's score adds the log of the message's familiarity to that intent, the share
of its n-grams seen in the intent's training examples. Gibberish, other languages, emoji and messages
about something else share few n-grams with any intent, so every score is low. Confidences are the
calibrated scores (`confidence.py`). Everything, n-gram hashing included, is tensor arithmetic on
`input_ids`, so it exports to one ONNX graph.
"""

import math
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from torch import nn
from torch.nn import functional
from transformers import AutoModel, PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from bert_intent.confidence import MAX_PROBABILITY, Calibration

NGRAM_BUCKETS = 2**17
MAX_NGRAM = 4
# Rolling hash of token ids, kept below _MODULUS at every step so int64 never overflows (in torch and ONNX).
_MULTIPLIER, _MODULUS, _ORDER_OFFSET = 1_000_003, 2_147_483_647, 999_983
# Inverse regularisation strength of the n-gram model (scikit-learn's C).
NGRAM_C = 10.0
# Measured with the pretrained stand-in on the example bot, 10 examples per intent (README, "Few examples
# per intent"): at 1/10 of their strength the encoder's votes add to the n-gram model's instead of
# overruling it (1, 3, 10 and 30 tried).
ENCODER_TEMPERATURE = 10.0
TAG_NGRAM_BUCKETS = 2**16
# A token's lexical features: the n-grams (first token's offset from it, length) around it.
TAG_WINDOWS = ((0, 1), (-1, 1), (1, 1), (-2, 1), (2, 1), (-1, 2), (0, 2), (-2, 2), (1, 2), (-1, 3))
_TAG_REACH = 2  # the farthest any window reaches from its token
# Measured on CAIS (300 per intent, the pretrained stand-in) and the example bot (trained from scratch),
# span F1: C 1 -> 100 raised both (0.602 -> 0.627; 0.781 -> 0.828 with 40 epochs); the tagger's
# temperature 2 suits both (1 and 2 tie on CAIS; from scratch, 1: 0.774, 2: 0.797, 4: 0.822).
TAG_NGRAM_C = 100.0
TAG_ENCODER_TEMPERATURE = 2.0


@dataclass
class IntentOutput(ModelOutput):
    """`logits`: both heads combined (closed-set log-probabilities, what validation scores); `scores`:
    the logits' log-probabilities plus the log familiarity; `confidences`: calibrated scores (what
    predictions use); `encoder_logits`: the intent head alone, in training mode only (what the encoder
    learns from); `tag_logits`: (batch, tokens, tags) log-probabilities of the entity tags, both tag
    heads combined; `tag_probabilities`: their softmax; `encoder_tag_logits`: the tagger alone, in
    training mode only."""

    logits: Optional[torch.Tensor] = None
    scores: Optional[torch.Tensor] = None
    confidences: Optional[torch.Tensor] = None
    encoder_logits: Optional[torch.Tensor] = None
    tag_logits: Optional[torch.Tensor] = None
    tag_probabilities: Optional[torch.Tensor] = None
    encoder_tag_logits: Optional[torch.Tensor] = None


class IntentNetwork(nn.Module):
    """An encoder with a mean-pooled intent head, a hashed n-gram head and a token-tagging entity head
    with `num_tags` tags (see the module docstring; 1, only "outside", for a network without entities)."""

    def __init__(self, encoder: PreTrainedModel, num_labels: int, num_tags: int = 1) -> None:
        super().__init__()
        if getattr(encoder, "pooler", None) is not None:  # [CLS] pooling is not used
            encoder.pooler = None
        self.encoder = encoder
        self.config: PretrainedConfig = encoder.config
        self.config.num_labels = num_labels
        self.config.num_entity_tags = num_tags
        self.dropout = nn.Dropout(encoder.config.hidden_dropout_prob)
        self.intent = nn.Linear(encoder.config.hidden_size, num_labels)
        self.tagger = nn.Linear(encoder.config.hidden_size, num_tags)
        self.tag_ngram_weights = nn.Parameter(torch.zeros(TAG_NGRAM_BUCKETS, num_tags), requires_grad=False)
        self.tag_ngram_bias = nn.Parameter(torch.zeros(num_tags), requires_grad=False)
        # Fitted by `fit_ngrams`, never by gradient descent.
        self.ngram_weights = nn.Parameter(torch.zeros(NGRAM_BUCKETS, num_labels), requires_grad=False)
        self.ngram_bias = nn.Parameter(torch.zeros(num_labels), requires_grad=False)
        self.ngram_idf = nn.Parameter(torch.zeros(NGRAM_BUCKETS, 1), requires_grad=False)  # a column: embedding-shaped
        # 1 where an n-gram occurs in an intent's training examples.
        self.ngram_seen = nn.Parameter(torch.zeros(NGRAM_BUCKETS, num_labels), requires_grad=False)
        # Slope and offset of `confidence.Calibration`, set by `calibrate` (the archive keeps them in its metadata).
        self.register_buffer("calibration", torch.tensor([Calibration().slope, Calibration().offset]), persistent=False)

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

    def calibrate(self, calibration: Calibration) -> None:
        """Use `calibration`'s slope and offset for the confidences."""
        self.calibration.copy_(torch.tensor([calibration.slope, calibration.offset]))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: Optional[torch.Tensor] = None,
        # Named so Trainer passes the label columns on; the loss is Trainer's.
        labels: Optional[torch.Tensor] = None,
        entity_tags: Optional[torch.Tensor] = None,
    ) -> IntentOutput:
        inputs: Dict[str, torch.Tensor] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        states = self.encoder(**inputs).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        encoder_logits = self.intent(self.dropout(pooled))
        encoder_tag_logits = self.tagger(self.dropout(states)).float()
        tag_ngram_logits = functional.embedding(tag_ngram_buckets(input_ids), self.tag_ngram_weights).sum(dim=2) + self.tag_ngram_bias
        tag_logits = functional.log_softmax(encoder_tag_logits / TAG_ENCODER_TEMPERATURE, dim=-1) + functional.log_softmax(
            tag_ngram_logits.float(), dim=-1
        )
        buckets, present = ngram_buckets(input_ids, attention_mask)
        ngram_logits = self._ngram_logits(buckets, present)
        logits = functional.log_softmax(encoder_logits.float() / ENCODER_TEMPERATURE, dim=-1) + functional.log_softmax(
            ngram_logits.float(), dim=-1
        )
        scores = functional.log_softmax(logits, dim=-1) + self._familiarity(buckets, present).clamp(min=1e-4).log()
        # `confidence.Calibration` on the scores' log-odds (`confidence.log_odds`).
        bounded = scores.clamp(max=math.log(MAX_PROBABILITY))
        log_odds = bounded - torch.log(1 - torch.exp(bounded))  # ONNX has no expm1
        confidences = torch.sigmoid(self.calibration[0] * log_odds + self.calibration[1])
        return IntentOutput(
            logits=logits,
            scores=scores,
            confidences=confidences,
            encoder_logits=encoder_logits if self.training else None,
            tag_logits=tag_logits,
            tag_probabilities=functional.softmax(tag_logits, dim=-1),
            encoder_tag_logits=encoder_tag_logits if self.training else None,
        )

    def fit_ngrams(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        label_ids: Sequence[int],
        balanced: bool,
        unknown_token_id: Optional[int],
    ) -> None:
        """Fit the n-gram head on the (padded) training batch: which n-grams each intent's examples have
        (never those with the tokenizer's unknown token, which stands for anything it cannot read),
        inverse document frequencies, then a multinomial logistic regression on the TF-IDF features
        (`balanced`: intents weigh equally). Every intent must have at least one example."""
        num_examples = len(label_ids)
        with torch.no_grad():
            buckets, present = ngram_buckets(input_ids, attention_mask)
            _, readable = ngram_buckets(input_ids, attention_mask * (input_ids != unknown_token_id))
            document_frequency = torch.zeros(NGRAM_BUCKETS)
            self.ngram_seen.zero_()
            for row, row_present, row_readable, label_id in zip(buckets, present, readable, label_ids):
                document_frequency[torch.unique(row[row_present.bool()])] += 1
                self.ngram_seen[row[row_readable.bool()], label_id] = 1
            # scikit-learn's smoothed idf; n-grams never seen in training weigh nothing.
            idf = torch.log((1 + num_examples) / (1 + document_frequency)) + 1
            self.ngram_idf.copy_(torch.where(document_frequency > 0, idf, torch.zeros_like(idf)).unsqueeze(-1))
            weights = _tfidf(self.ngram_idf, buckets, present)
        rows = np.repeat(np.arange(num_examples), buckets.shape[1])
        features = sparse.csr_matrix(
            (weights.flatten().numpy(), (rows, buckets.flatten().numpy())), shape=(num_examples, NGRAM_BUCKETS)
        )
        model = LogisticRegression(C=NGRAM_C, class_weight="balanced" if balanced else None, max_iter=1000)
        model.fit(features, np.asarray(label_ids))
        coefficients, intercept = _class_rows(model)
        with torch.no_grad():
            self.ngram_weights.copy_(torch.from_numpy(coefficients.T.astype(np.float32)))
            self.ngram_bias.copy_(torch.from_numpy(intercept.astype(np.float32)))

    def fit_tag_ngrams(self, input_ids: torch.Tensor, tags: torch.Tensor, ignored: int) -> None:
        """Fit the lexical tag head on the (padded) training batch's token tags (`ignored` marks
        tokens without one): a multinomial logistic regression on each token's hashed n-grams."""
        buckets = tag_ngram_buckets(input_ids)
        kept = (tags != ignored).flatten()
        token_buckets = buckets.reshape(-1, len(TAG_WINDOWS))[kept].numpy()
        token_tags = tags.flatten()[kept].numpy()
        rows = np.repeat(np.arange(len(token_tags)), len(TAG_WINDOWS))
        features = sparse.csr_matrix(
            (np.ones(rows.size, dtype=np.float32), (rows, token_buckets.flatten())), shape=(len(token_tags), TAG_NGRAM_BUCKETS)
        )
        coefficients = np.zeros((self.tagger.out_features, TAG_NGRAM_BUCKETS), dtype=np.float32)
        intercept = np.full(self.tagger.out_features, -30.0, dtype=np.float32)  # tags never seen stay impossible
        present = np.unique(token_tags)
        if len(present) > 1:
            model = LogisticRegression(C=TAG_NGRAM_C, max_iter=1000)
            model.fit(features, token_tags)
            coefficients[model.classes_], intercept[model.classes_] = _class_rows(model)
        else:
            intercept[present] = 0.0
        with torch.no_grad():
            self.tag_ngram_weights.copy_(torch.from_numpy(coefficients.T))
            self.tag_ngram_bias.copy_(torch.from_numpy(intercept))

    def _ngram_logits(self, buckets: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        weights = _tfidf(self.ngram_idf, buckets, present)
        return (functional.embedding(buckets, self.ngram_weights) * weights.unsqueeze(-1)).sum(dim=1) + self.ngram_bias

    def _familiarity(self, buckets: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """(batch, intents): the share of each message's n-grams seen in each intent's training examples."""
        present = present.to(self.ngram_seen.dtype)
        seen = (functional.embedding(buckets, self.ngram_seen) * present.unsqueeze(-1)).sum(dim=1)
        return seen / present.sum(dim=1, keepdim=True).clamp(min=1)


def ngram_buckets(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Hashed bucket of every token 1- to MAX_NGRAM-gram (n-grams across [CLS]/[SEP] mark the start and
    end), and whether it lies inside the message (1) or touches padding (0); both (batch, n-grams)."""
    buckets, present = [], []
    hashes, mask = input_ids, attention_mask
    for order in range(1, MAX_NGRAM + 1):
        if order > 1:
            hashes = (hashes[:, :-1] * _MULTIPLIER + input_ids[:, order - 1 :]) % _MODULUS
            mask = mask[:, :-1] * attention_mask[:, order - 1 :]
        buckets.append((hashes + order * _ORDER_OFFSET) % NGRAM_BUCKETS)
        present.append(mask)
    return torch.cat(buckets, dim=1), torch.cat(present, dim=1)


def _class_rows(model: LogisticRegression) -> Tuple[np.ndarray, np.ndarray]:
    """A fitted model's (coefficients, intercept) with one row per class: scikit-learn keeps a single
    row for two classes, which are the logits (-z/2, z/2)."""
    coefficients, intercept = model.coef_, model.intercept_
    if len(model.classes_) == 2:
        return np.vstack([-coefficients, coefficients]) / 2, np.hstack([-intercept, intercept]) / 2
    return coefficients, intercept


def tag_ngram_buckets(input_ids: torch.Tensor) -> torch.Tensor:
    """(batch, tokens, windows): the hashed bucket of each `TAG_WINDOWS` n-gram around every token;
    positions beyond the sequence read as padding (token id 0)."""
    padded = functional.pad(input_ids, (_TAG_REACH, _TAG_REACH))
    length = input_ids.shape[1]
    buckets = []
    for window, (offset, size) in enumerate(TAG_WINDOWS):
        hashes = torch.zeros_like(input_ids) + window * _ORDER_OFFSET
        for position in range(offset, offset + size):
            start = _TAG_REACH + position
            hashes = (hashes * _MULTIPLIER + padded[:, start : start + length]) % _MODULUS
        buckets.append(hashes % TAG_NGRAM_BUCKETS)
    return torch.stack(buckets, dim=2)


def _tfidf(idf: torch.Tensor, buckets: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Each n-gram occurrence's weight: its idf, with the message's weights scaled to unit length."""
    weights = functional.embedding(buckets, idf).squeeze(-1) * present.to(idf.dtype)
    return weights / weights.square().sum(dim=1, keepdim=True).sqrt().clamp(min=1e-6)
