"""How long and how fast the encoder trains when the configuration leaves it to training: the number of
epochs (`epochs: 0`) and the learning rate (`learning_rate: null`)."""

import math
from typing import Tuple

from bert_intent.settings import Settings

# With `epochs: 0`, training runs about this many optimizer steps (fine-tuning needs hundreds, whatever
# the data size: Mosbach et al. 2021, Zhang et al. 2021), within these bounds on the number of epochs.
TARGET_STEPS = 500
MIN_EPOCHS, MAX_EPOCHS = 3, 50
# With `learning_rate: null`: 3e-5 at bert-base's width (768), 1e-3 at BERT-mini's (256), log-linear
# in between and beyond, within RATE_BOUNDS. Narrow checkpoints want far higher rates than wide ones.
RATE_ANCHORS = ((768, 3e-5), (256, 1e-3))
RATE_BOUNDS = (1e-5, 1e-3)


def steps_per_epoch(train_size: int, settings: Settings) -> int:
    """Optimizer steps in one epoch over `train_size` examples."""
    return math.ceil(train_size / (settings.batch_size * settings.gradient_accumulation_steps))


def planned_epochs(train_size: int, settings: Settings, epoch_fraction: float) -> Tuple[int, str]:
    """The number of epochs to train and why: `epochs`, or with `epochs: 0` enough epochs for about
    TARGET_STEPS optimizer steps (MIN_EPOCHS to MAX_EPOCHS), scaled by `epoch_fraction`
    (`rasa train --finetune --epoch-fraction`; Rasa scales an explicit `epochs` itself)."""
    if settings.epochs:
        return settings.epochs, "as configured"
    steps = steps_per_epoch(train_size, settings)
    epochs = min(MAX_EPOCHS, max(MIN_EPOCHS, math.ceil(TARGET_STEPS / steps)))
    reason = f"chosen for about {TARGET_STEPS} optimizer steps of {steps} per epoch, {MIN_EPOCHS} to {MAX_EPOCHS} epochs"
    if epoch_fraction != 1.0:
        return max(1, math.ceil(epochs * epoch_fraction)), f"{reason}, times the epoch fraction {epoch_fraction}"
    return epochs, reason


def learning_rate(hidden_size: int, settings: Settings) -> Tuple[float, str]:
    """`learning_rate`, or with `learning_rate: null` one for the encoder's width (see RATE_ANCHORS), and why."""
    if settings.learning_rate is not None:
        return settings.learning_rate, "as configured"
    (wide, wide_rate), (narrow, narrow_rate) = RATE_ANCHORS
    slope = math.log(narrow_rate / wide_rate) / math.log(wide / narrow)
    rate = min(RATE_BOUNDS[1], max(RATE_BOUNDS[0], wide_rate * (wide / hidden_size) ** slope))
    return rate, f"chosen for hidden size {hidden_size}"
