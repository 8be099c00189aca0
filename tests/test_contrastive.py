"""The supervised contrastive term (`bert_intent.contrastive`): its value on hand-made batches."""

import math

import torch
from torch.nn import functional

from bert_intent.contrastive import supervised_contrastive


def test_a_batch_grouped_by_intent_costs_less_than_a_mixed_one() -> None:
    labels = torch.tensor([0, 0, 1, 1])
    grouped = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    mixed = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    assert supervised_contrastive(grouped, labels) < supervised_contrastive(mixed, labels)


def test_the_value_of_two_orthogonal_pairs() -> None:
    # Each message: its partner at cosine 1, the two others at 0, so -log(e^(1/t) / (e^(1/t) + 2)).
    representation = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    temperature = 0.5
    expected = -math.log(math.exp(1 / temperature) / (math.exp(1 / temperature) + 2))
    value = supervised_contrastive(representation, torch.tensor([0, 0, 1, 1]), temperature)
    assert math.isclose(float(value), expected, rel_tol=1e-6)


def test_messages_without_a_partner_in_the_batch_add_nothing() -> None:
    representation = functional.normalize(torch.randn(5, 8), dim=-1)
    labels = torch.tensor([0, 0, 1, 2, 3])
    alone_dropped = supervised_contrastive(representation[:2], labels[:2])
    # With partners only for the first two messages, the others only widen the softmax's denominator.
    assert float(supervised_contrastive(representation, labels)) >= float(alone_dropped) - 1e-6
    assert float(supervised_contrastive(representation[2:], labels[2:])) == 0.0


def test_it_has_a_gradient_towards_the_partners() -> None:
    representation = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], requires_grad=True)
    supervised_contrastive(representation, torch.tensor([0, 0, 1])).backward()
    # The first message is pulled towards its partner (the second axis): its gradient there is negative.
    assert representation.grad is not None and float(representation.grad[0, 1]) < 0
