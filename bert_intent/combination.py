"""How much each of the network's two heads counts, fitted on each bot's held-out examples.

Intents and entity tags are each scored by two heads: the fine-tuned encoder's and a lexical n-gram
model fitted in closed form (`network.py`). Their log-probabilities are added with weights, a weighted
product of experts:

    log p(y | x) = w_encoder * log p_encoder(y | x) + w_ngrams * log p_ngrams(y | x) - log Z(x)

The weights are the ones under which held-out examples (messages for intents, tokens for tags) get the
least log loss. A Gaussian prior on their logarithms keeps a fit on a handful of examples near the
prior values, which the data overrides as soon as it disagrees: a strong encoder on a bot where word
order decides gets a large weight, a weak one beside good keywords a small one.
"""

from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict

import numpy as np
import torch
from torch.nn import functional

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


@dataclass(frozen=True)
class Prior:
    """A Gaussian prior on the logarithm of each weight, centred on `centre` with standard deviation
    `scale` (a factor e^scale away costs half a nat, half of one badly classified held-out example);
    `unfitted`: the weights when nothing is held out."""

    centre: Combination
    scale: float
    unfitted: Combination


# The intents' prior is sceptical and wide. A fine-tuned encoder is far surer than right, and the few
# held-out messages that chose its epoch rate it above what it does on new messages (docs/held-out-
# decisions.md), so its weight starts near 0; a factor of 7 either way costs half a nat, and a few
# held-out messages on which only the encoder is right lift it past 0.5 (`encoder_decides.py`).
# Unfitted, the encoder's weight is what the pretrained stand-in needed on the example bot at 10
# examples per intent.
INTENT_PRIOR = Prior(centre=Combination(encoder=0.01, ngrams=1.0), scale=2.0, unfitted=Combination(encoder=0.1, ngrams=1.0))
TAG_PRIOR = Prior(centre=Combination(encoder=0.5, ngrams=1.0), scale=1.0, unfitted=Combination(encoder=0.5, ngrams=1.0))


def combine(encoder_log_probs: torch.Tensor, ngram_log_probs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Normalised log-probabilities of the weighted product of both heads (over the last dimension)."""
    return functional.log_softmax(weights[0] * encoder_log_probs + weights[1] * ngram_log_probs, dim=-1)


def fit(encoder_log_probs: np.ndarray, ngram_log_probs: np.ndarray, targets: np.ndarray, prior: Prior) -> Combination:
    """The weights of least log loss on held-out rows ((rows, classes) log-probabilities of each head
    and the true class of each row), under the prior; the prior's unfitted weights without rows."""
    if len(targets) == 0:
        return prior.unfitted
    encoder = torch.as_tensor(encoder_log_probs, dtype=torch.float64)
    ngrams = torch.as_tensor(ngram_log_probs, dtype=torch.float64)
    target = torch.as_tensor(targets, dtype=torch.long)
    prior_logs = torch.log(prior.centre.weights().double())

    def loss(log_weights: torch.Tensor) -> torch.Tensor:
        log_loss = functional.nll_loss(combine(encoder, ngrams, log_weights.exp()), target, reduction="sum")
        return log_loss + ((log_weights - prior_logs) / prior.scale).square().sum() / 2

    encoder_weight, ngram_weight = minimise(loss, prior_logs).exp().tolist()
    return Combination(float(encoder_weight), float(ngram_weight), len(targets))


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
