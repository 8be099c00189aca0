"""The network: a BERT-family encoder with two intent heads and two entity tag heads, each pair combined
with weights fitted on the bot's held-out examples (`combination.py`), and open-set confidences.

- `intent`: a linear layer over the mean of the encoder's token states (fine-tuned with the encoder).
  The mean suits checkpoints pretrained without a sentence task better than [CLS] and a new pooler.
- `ngrams`: a linear model over the message's token 1- to 4-grams (for Chinese, character n-grams),
  hashed into buckets and weighted TF-IDF style, fitted in closed form with scikit-learn's
  LogisticRegression. With a handful of examples per intent such a keyword model is strong where a
  fine-tuned encoder is still weak (it is what Rasa's DIET gets from its sparse character n-grams).
- `tagger`: a linear layer over each token's state, scoring its entity tags (`entities.py`), trained
  jointly with the intent head (as in JointBERT, Chen et al. 2019).
- `tag_ngrams`: a linear model over each token's neighbourhood (the token ids and short n-grams up to
  two tokens away, hashed), fitted in closed form: the lexical features a CRF tagger uses.
- `centroids`: each intent's mean representation (the normalised mean of the encoder's states) over
  its training examples, for the semantic part of the open-set score.

Open world (`confidence.py`): each intent's score adds to its closed-set log-probability the log of
the message's familiarity to the intent (the share of its n-grams seen in the intent's training
examples) and its cosine to the intent's centroid; the confidences are a softmax of the scores beside
"none of them". Everything, n-gram hashing included, is tensor arithmetic on `input_ids`, so it exports
to one ONNX graph.
"""

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

from bert_intent import combination, confidence
from bert_intent.combination import Combination
from bert_intent.confidence import Calibration

NGRAM_BUCKETS = 2**17
MAX_NGRAM = 4
# Rolling hash of token ids, kept below _MODULUS at every step so int64 never overflows (in torch and ONNX).
_MULTIPLIER, _MODULUS, _ORDER_OFFSET = 1_000_003, 2_147_483_647, 999_983
# Inverse regularisation strength of the n-gram model (scikit-learn's C).
NGRAM_C = 10.0
TAG_NGRAM_BUCKETS = 2**16
# A token's lexical features: the n-grams (first token's offset from it, length) around it.
TAG_WINDOWS = ((0, 1), (-1, 1), (1, 1), (-2, 1), (2, 1), (-1, 2), (0, 2), (-2, 2), (1, 2), (-1, 3))
_TAG_REACH = 2  # the farthest any window reaches from its token
# Measured on CAIS (300 per intent, the pretrained stand-in) and the example bot (trained from scratch),
# span F1: C 1 -> 100 raised both (0.602 -> 0.627; 0.781 -> 0.828 with 40 epochs).
TAG_NGRAM_C = 100.0


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
        # Set by `fit_centroids`.
        self.centroids = nn.Parameter(torch.zeros(num_labels, encoder.config.hidden_size), requires_grad=False)
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
    ) -> IntentOutput:
        inputs: Dict[str, torch.Tensor] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        states = self.encoder(**inputs).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
        encoder_log_probs = functional.log_softmax(self.intent(self.dropout(pooled)).float(), dim=-1)
        buckets, present = ngram_buckets(input_ids, attention_mask)
        ngram_log_probs = functional.log_softmax(self._ngram_logits(buckets, present).float(), dim=-1)
        logits = combination.combine(encoder_log_probs, ngram_log_probs, self.intent_weights)
        representation = functional.normalize(pooled.float(), dim=-1)
        familiarity = self._familiarity(buckets, present)
        similarity = representation @ self.centroids.T
        scores = confidence.open_scores(logits, familiarity, similarity, self.calibration)
        encoder_tag_log_probs = functional.log_softmax(self.tagger(self.dropout(states)).float(), dim=-1)
        tag_ngram_logits = functional.embedding(tag_ngram_buckets(input_ids), self.tag_ngram_weights).sum(dim=2) + self.tag_ngram_bias
        ngram_tag_log_probs = functional.log_softmax(tag_ngram_logits.float(), dim=-1)
        tag_logits = combination.combine(encoder_tag_log_probs, ngram_tag_log_probs, self.tag_weights)
        return IntentOutput(
            logits=logits,
            encoder_log_probs=encoder_log_probs,
            ngram_log_probs=ngram_log_probs,
            familiarity=familiarity,
            similarity=similarity,
            scores=scores,
            confidences=confidence.confidences(scores, self.calibration),
            encoder_tag_log_probs=encoder_tag_log_probs,
            ngram_tag_log_probs=ngram_tag_log_probs,
            tag_logits=tag_logits,
            tag_probabilities=tag_logits.exp(),
            representation=representation,
        )

    def fit_centroids(self, representations: torch.Tensor, label_ids: Sequence[int]) -> None:
        """Each intent's centroid: the normalised mean of its training examples' representations."""
        labels = torch.as_tensor(label_ids, dtype=torch.long)
        sums = torch.zeros_like(self.centroids).index_add_(0, labels, representations.to(self.centroids))
        with torch.no_grad():
            self.centroids.copy_(functional.normalize(sums, dim=-1))

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
