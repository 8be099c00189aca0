"""How much each of the network's two heads counts, fitted on each bot's held-out examples.

Intents and entity tags are each scored by two heads: the fine-tuned encoder's and a lexical n-gram
model fitted in closed form (`network.py`). Their log-probabilities are added with weights, a weighted
product of experts:

    log p(y | x) = w_encoder * log p_encoder(y | x) + w_ngrams * log p_ngrams(y | x) - log Z(x)

The weights are the ones under which held-out examples (messages for intents, tokens for tags) get the
least log loss. A weak Gaussian prior on their logarithms keeps a fit on a handful of examples near
the prior values, which the data overrides as soon as it disagrees: a strong encoder on a bot where
word order decides gets a large weight, a weak one beside good keywords a small one.

Where the held-out examples cannot tell how far to go (an encoder right and sure on every one of them
leaves its weight anywhere above a point), the prior decides alone. So the intents' prior is itself
chosen, between one head ten times surer than right and the other as trained, either way round: the one
under which the held-out examples are most probable (the larger evidence, empirical Bayes). The
encoder's confident errors keep the stand-in's prior; an encoder that makes none gets the mirror one.
"""

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, Sequence, Tuple

import numpy as np
import torch
from torch.nn import functional

# Standard deviation of the prior on each log-weight: a factor e away from the prior costs half a nat,
# half of one badly classified held-out example.
PRIOR_SCALE = 1.0


@dataclass(frozen=True)
class Combination:
    """Weights of the encoder head and the n-gram head; `fitted_on`: how many held-out rows chose them
    (0: the prior)."""

    encoder: float
    ngrams: float
    fitted_on: int = 0

    def weights(self) -> torch.Tensor:
        return torch.tensor([self.encoder, self.ngrams], dtype=torch.float32)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "Combination":
        return cls(**values)


# Priors, the first of each used as it is when there is nothing held out. The intents' first: what the
# pretrained stand-in needed on the example bot at 10 examples per intent (a fine-tuned encoder is far
# surer than right); the second, its mirror image (n-grams that cannot see what decides).
INTENT_PRIOR = Combination(encoder=0.1, ngrams=1.0)
INTENT_PRIORS = (INTENT_PRIOR, Combination(encoder=1.0, ngrams=0.1))
TAG_PRIOR = Combination(encoder=0.5, ngrams=1.0)


def combine(encoder_log_probs: torch.Tensor, ngram_log_probs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Normalised log-probabilities of the weighted product of both heads (over the last dimension)."""
    return functional.log_softmax(weights[0] * encoder_log_probs + weights[1] * ngram_log_probs, dim=-1)


def fit(encoder_log_probs: np.ndarray, ngram_log_probs: np.ndarray, targets: np.ndarray, priors: Sequence[Combination]) -> Combination:
    """The weights of least log loss on held-out rows ((rows, classes) log-probabilities of each head
    and the true class of each row), under whichever of `priors` makes the rows most probable; the first
    prior itself without rows."""
    if len(targets) == 0:
        return priors[0]
    encoder = torch.as_tensor(encoder_log_probs, dtype=torch.float64)
    ngrams = torch.as_tensor(ngram_log_probs, dtype=torch.float64)
    target = torch.as_tensor(targets, dtype=torch.long)
    log_weights, _ = max((_fit_under(prior, encoder, ngrams, target) for prior in priors), key=lambda fitted: fitted[1])
    encoder_weight, ngram_weight = log_weights.exp().tolist()
    return Combination(float(encoder_weight), float(ngram_weight), len(targets))


def _fit_under(prior: Combination, encoder: torch.Tensor, ngrams: torch.Tensor, target: torch.Tensor) -> Tuple[torch.Tensor, float]:
    """The log-weights of least penalised log loss under `prior`, and the log evidence of the rows under
    it in Laplace's approximation (up to a constant that is the same for every prior)."""
    prior_logs = torch.log(torch.tensor([prior.encoder, prior.ngrams], dtype=torch.float64))

    def loss(log_weights: torch.Tensor) -> torch.Tensor:
        log_loss = functional.nll_loss(combine(encoder, ngrams, log_weights.exp()), target, reduction="sum")
        return log_loss + ((log_weights - prior_logs) / PRIOR_SCALE).square().sum() / 2

    log_weights = minimise(loss, prior_logs)
    curvature = torch.autograd.functional.hessian(loss, log_weights)
    log_evidence = float(-loss(log_weights) - torch.logdet(curvature) / 2)
    return log_weights, log_evidence if math.isfinite(log_evidence) else -math.inf


def minimise(loss: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor) -> torch.Tensor:
    """The values near `start` where the (smooth) `loss` is least, found with L-BFGS."""
    values = start.clone().requires_grad_(True)
    optimizer = torch.optim.LBFGS([values], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        value = loss(values)
        value.backward()
        return value

    optimizer.step(closure)
    return values.detach()


def accuracy(log_probs: np.ndarray, targets: np.ndarray) -> float:
    """Share of rows whose most probable class is the true one (NaN without rows)."""
    return float(np.mean(np.argmax(log_probs, axis=-1) == targets)) if len(targets) else float("nan")
