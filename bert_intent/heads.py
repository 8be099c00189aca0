"""The network's parts that are fitted in closed form, each owning its weights and its `fit`:

- `NgramHead`: a linear model over the message's token 1- to 4-grams (for Chinese, character n-grams),
  hashed (`hashing.py`) and weighted TF-IDF style, fitted with scikit-learn's LogisticRegression. With a
  handful of examples per intent such a keyword model is strong where a fine-tuned encoder is still weak
  (it is what Rasa's DIET gets from its sparse character n-grams).
- `Familiarity`: the share of a message's n-grams seen in each intent's training examples (lexical
  out-of-scope evidence: gibberish shares almost none).
- `TagNgramHead`: a linear model over each token's neighbourhood (the token ids and short n-grams up to
  two tokens away, hashed): the lexical features a CRF tagger uses.
- `Centroids`: each intent's normalised mean representation (semantic out-of-scope evidence).

They read tensors only, so the whole network exports to one ONNX graph. Their `fit`s run on the CPU.
"""

import warnings
from typing import Sequence, Tuple

import numpy as np
import torch
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from torch import nn
from torch.nn import functional

from bert_intent.hashing import NGRAM_BUCKETS, TAG_NGRAM_BUCKETS, TAG_WINDOWS, tag_ngram_buckets

# Inverse regularisation strength of the n-gram model (scikit-learn's C).
NGRAM_C = 10.0
# Measured on CAIS (300 per intent, the pretrained stand-in) and the example bot (trained from scratch),
# span F1: C 1 -> 100 raised both (0.602 -> 0.627; 0.781 -> 0.828 with 40 epochs).
TAG_NGRAM_C = 100.0


def _frozen(*shape: int) -> nn.Parameter:
    """A parameter fitted in closed form, never by gradient descent."""
    return nn.Parameter(torch.zeros(*shape), requires_grad=False)


class NgramHead(nn.Module):
    """Intent logits from the message's hashed n-grams (TF-IDF weighted, unit length)."""

    def __init__(self, num_labels: int) -> None:
        super().__init__()
        self.weights = _frozen(NGRAM_BUCKETS, num_labels)
        self.bias = _frozen(num_labels)
        self.idf = _frozen(NGRAM_BUCKETS, 1)  # a column: embedding-shaped

    def forward(self, buckets: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        weights = self._tfidf(buckets, present)
        return (functional.embedding(buckets, self.weights) * weights.unsqueeze(-1)).sum(dim=1) + self.bias

    def fit(self, buckets: torch.Tensor, present: torch.Tensor, label_ids: Sequence[int], balanced: bool) -> None:
        """Inverse document frequencies (scikit-learn's smoothed idf; n-grams never seen weigh nothing),
        then a multinomial logistic regression on the TF-IDF features (`balanced`: intents weigh equally)."""
        num_examples = len(label_ids)
        with torch.no_grad():
            document_frequency = torch.zeros(NGRAM_BUCKETS)
            for row, row_present in zip(buckets, present):
                document_frequency[torch.unique(row[row_present.bool()])] += 1
            idf = torch.log((1 + num_examples) / (1 + document_frequency)) + 1
            self.idf.copy_(torch.where(document_frequency > 0, idf, torch.zeros_like(idf)).unsqueeze(-1))
            weights = self._tfidf(buckets, present)
        rows = np.repeat(np.arange(num_examples), buckets.shape[1])
        features = sparse.csr_matrix(
            (weights.flatten().numpy(), (rows, buckets.flatten().numpy())), shape=(num_examples, NGRAM_BUCKETS)
        )
        coefficients, intercept = _logistic_regression(features, np.asarray(label_ids), NGRAM_C, balanced)
        with torch.no_grad():
            self.weights.copy_(torch.from_numpy(coefficients.T.astype(np.float32)))
            self.bias.copy_(torch.from_numpy(intercept.astype(np.float32)))

    def _tfidf(self, buckets: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Each n-gram occurrence's weight: its idf, with the message's weights scaled to unit length."""
        weights = functional.embedding(buckets, self.idf).squeeze(-1) * present.to(self.idf.dtype)
        return weights / weights.square().sum(dim=1, keepdim=True).sqrt().clamp(min=1e-6)


class Familiarity(nn.Module):
    """(batch, intents): the share of each message's n-grams seen in each intent's training examples.

    The n-grams include the [CLS] and [SEP] unigrams, which every intent has seen: they smooth the share
    (at least 2 of the 4 x tokens - 6 n-grams of a message, [CLS] and [SEP] counted), so that the log of
    the familiarity stays within a few nats for messages of a known intent that share no n-gram with it.
    Without them (tried in session 22, docs/held-out-decisions.md) the calibration lowers the familiarity
    weight and catches less gibberish."""

    def __init__(self, num_labels: int) -> None:
        super().__init__()
        self.seen = _frozen(NGRAM_BUCKETS, num_labels)  # 1 where an n-gram occurs in an intent's examples

    def forward(self, buckets: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        present = present.to(self.seen.dtype)
        seen = (functional.embedding(buckets, self.seen) * present.unsqueeze(-1)).sum(dim=1)
        return seen / present.sum(dim=1, keepdim=True).clamp(min=1)

    def fit(self, buckets: torch.Tensor, readable: torch.Tensor, label_ids: Sequence[int]) -> None:
        """Mark the n-grams of each intent's examples (`readable`: those without the tokenizer's unknown
        token, which stands for anything it cannot read)."""
        with torch.no_grad():
            self.seen.zero_()
            for row, row_readable, label_id in zip(buckets, readable, label_ids):
                self.seen[row[row_readable.bool()], label_id] = 1


class TagNgramHead(nn.Module):
    """Each token's tag logits from the hashed n-grams around it."""

    def __init__(self, num_tags: int) -> None:
        super().__init__()
        self.weights = _frozen(TAG_NGRAM_BUCKETS, num_tags)
        self.bias = _frozen(num_tags)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return functional.embedding(tag_ngram_buckets(input_ids, attention_mask), self.weights).sum(dim=2) + self.bias

    def fit(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, tags: torch.Tensor, ignored: int) -> None:
        """A multinomial logistic regression on each token's hashed n-grams (`ignored` marks tokens
        without a tag); tags never seen stay impossible."""
        buckets = tag_ngram_buckets(input_ids, attention_mask)
        kept = (tags != ignored).flatten()
        token_buckets = buckets.reshape(-1, len(TAG_WINDOWS))[kept].numpy()
        token_tags = tags.flatten()[kept].numpy()
        rows = np.repeat(np.arange(len(token_tags)), len(TAG_WINDOWS))
        features = sparse.csr_matrix(
            (np.ones(rows.size, dtype=np.float32), (rows, token_buckets.flatten())), shape=(len(token_tags), TAG_NGRAM_BUCKETS)
        )
        num_tags = self.bias.shape[0]
        coefficients = np.zeros((num_tags, TAG_NGRAM_BUCKETS), dtype=np.float32)
        intercept = np.full(num_tags, -30.0, dtype=np.float32)
        present = np.unique(token_tags)
        if len(present) > 1:
            coefficients[present], intercept[present] = _logistic_regression(features, token_tags, TAG_NGRAM_C, False)
        else:
            intercept[present] = 0.0
        with torch.no_grad():
            self.weights.copy_(torch.from_numpy(coefficients.T))
            self.bias.copy_(torch.from_numpy(intercept))


class Centroids(nn.Module):
    """(batch, intents): the cosine of a message's representation to each intent's centroid."""

    def __init__(self, num_labels: int, hidden_size: int) -> None:
        super().__init__()
        self.centroids = _frozen(num_labels, hidden_size)

    def forward(self, representation: torch.Tensor) -> torch.Tensor:
        return representation @ self.centroids.T

    def fit(self, representations: torch.Tensor, label_ids: Sequence[int]) -> None:
        """Each intent's centroid: the normalised mean of its training examples' representations."""
        labels = torch.as_tensor(label_ids, dtype=torch.long, device=self.centroids.device)
        sums = torch.zeros_like(self.centroids).index_add_(0, labels, representations.to(self.centroids))
        with torch.no_grad():
            self.centroids.copy_(functional.normalize(sums, dim=-1))


def _logistic_regression(features: sparse.csr_matrix, labels: np.ndarray, c: float, balanced: bool) -> Tuple[np.ndarray, np.ndarray]:
    """(coefficients: classes x features, intercept) of scikit-learn's multinomial LogisticRegression,
    one row per class present in `labels` (in sorted order). It is fitted on the feature columns that
    occur only: the others would get zero weights anyway (L2), and the solver's steps cost in proportion
    to the number of columns, which a hashed table mostly leaves empty. Newton-CG: on the example bot it
    reaches the same predictions as scikit-learn's default L-BFGS 2.5 to 5 times sooner (scipy's L-BFGS-B
    spends most of its time in per-iteration bookkeeping at hundreds of thousands of weights)."""
    used = np.unique(features.indices)
    model = LogisticRegression(C=c, class_weight="balanced" if balanced else None, solver="newton-cg", max_iter=1000)
    with warnings.catch_warnings():
        # Near the optimum newton-cg's line search can find no further decrease within machine precision.
        warnings.filterwarnings("ignore", message="The line search algorithm did not converge")
        warnings.filterwarnings("ignore", message="Line Search failed")
        model.fit(features[:, used], labels)
    compact, intercept = _class_rows(model)
    coefficients = np.zeros((compact.shape[0], features.shape[1]), dtype=compact.dtype)
    coefficients[:, used] = compact
    return coefficients, intercept


def _class_rows(model: LogisticRegression) -> Tuple[np.ndarray, np.ndarray]:
    """A fitted model's (coefficients, intercept) with one row per class: scikit-learn keeps a single
    row for two classes, which are the logits (-z/2, z/2)."""
    coefficients, intercept = model.coef_, model.intercept_
    if len(model.classes_) == 2:
        return np.vstack([-coefficients, coefficients]) / 2, np.hstack([-intercept, intercept]) / 2
    return coefficients, intercept
