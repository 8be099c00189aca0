"""The training plan without training: the held-out split, the number of epochs, the learning rate and
what counts as a better epoch."""

import math

import pytest

from bert_intent import settings
from bert_intent.held_out import split
from bert_intent.schedule import learning_rate, planned_epochs
from bert_intent.trainer import improves


def test_a_loss_that_only_creeps_down_is_no_improvement() -> None:
    assert improves(0.9, 2.0, (0.8, 0.1))  # a higher macro-F1 wins whatever the loss
    assert improves(1.0, 0.10, (1.0, 0.12))
    assert not improves(1.0, 0.0015, (1.0, 0.002))  # every example right, a hair surer: no reason to go on
    assert not improves(0.8, 0.01, (0.9, 0.5))


def test_every_intent_with_four_examples_gives_at_least_one() -> None:
    label_ids = [0] * 1000 + [1] * 3 + [2] * 4 + [3] * 25
    train_ids, validation = split(label_ids, 0.1, seed=0)
    held_out = [label_ids[index] for index in validation]
    assert (held_out.count(0), held_out.count(1), held_out.count(2), held_out.count(3)) == (100, 0, 1, 2)
    assert sorted(train_ids + validation) == list(range(len(label_ids)))
    assert split(label_ids, 0.0, seed=0) == (list(range(len(label_ids))), [])


@pytest.mark.parametrize(
    "examples, epochs", [(40, 50), (160, 50), (1_000, 8), (2_000, 4), (8_000, 3)]
)
def test_without_epochs_training_gets_about_500_steps_within_3_to_50_epochs(examples: int, epochs: int) -> None:
    config = settings.validate({})  # batch 16
    assert planned_epochs(examples, config, 1.0)[0] == epochs
    assert planned_epochs(examples, config, 0.2)[0] == math.ceil(epochs * 0.2)  # rasa train --finetune
    assert planned_epochs(examples, config.replace(epochs=7), 1.0) == (7, "as configured")


def test_without_a_learning_rate_it_follows_the_checkpoints_width() -> None:
    config = settings.validate({})
    assert learning_rate(768, config)[0] == pytest.approx(3e-5)  # bert-base
    assert learning_rate(256, config)[0] == pytest.approx(1e-3)  # BERT-mini, like the pretrained stand-in
    assert 3e-5 < learning_rate(512, config)[0] < 1e-3
    assert learning_rate(1024, config)[0] == pytest.approx(1.2e-5, rel=0.1)  # bert-large
    assert learning_rate(128, config)[0] == 1e-3  # capped
    assert learning_rate(256, config.replace(learning_rate=5e-5)) == (5e-5, "as configured")
