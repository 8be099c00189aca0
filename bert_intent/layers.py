"""Per-layer training controls for BERT-family encoders: depth, freezing, learning rates, dropout."""

import re
from typing import Any, Dict, List

from torch import nn

_LAYER = re.compile(r"\.layer\.(\d+)\.")


def layer_depth(parameter_name: str, num_layers: int) -> int:
    """0 for the embeddings, i + 1 for encoder layer i, num_layers + 1 for the pooler and the head."""
    match = _LAYER.search(parameter_name)
    if match:
        return int(match.group(1)) + 1
    return 0 if "embeddings" in parameter_name else num_layers + 1


def freeze_bottom(network: nn.Module, num_frozen: int) -> None:
    """Stop training the embeddings and the first `num_frozen` encoder layers (0 freezes nothing)."""
    if num_frozen == 0:
        return
    num_layers = network.config.num_hidden_layers
    if num_frozen > num_layers:
        raise ValueError(f"freeze_layers is {num_frozen}, but the model has only {num_layers} encoder layers.")
    for name, parameter in network.named_parameters():
        if layer_depth(name, num_layers) <= num_frozen:
            parameter.requires_grad = False


def freeze_word_embeddings(network: nn.Module) -> int:
    """Stop training the encoder's word embeddings (the largest matrix of a BERT: AdamW would update all
    its rows every step, though a batch reads a few hundred); return how many weights that keeps fixed."""
    weight = network.encoder.get_input_embeddings().weight
    weight.requires_grad = False
    return weight.numel()


def parameter_groups(
    network: nn.Module, learning_rate: float, weight_decay: float, layer_decay: float
) -> List[Dict[str, Any]]:
    """AdamW groups: the learning rate shrinks by `layer_decay` per layer below the head; biases and
    LayerNorm weights get no weight decay. Frozen parameters are left out."""
    num_layers = network.config.num_hidden_layers
    groups: Dict[tuple, List[nn.Parameter]] = {}
    for name, parameter in network.named_parameters():
        if not parameter.requires_grad:
            continue
        scale = layer_decay ** (num_layers + 1 - layer_depth(name, num_layers))
        decays = parameter.ndim > 1 and "LayerNorm" not in name and "layer_norm" not in name
        groups.setdefault((learning_rate * scale, weight_decay if decays else 0.0), []).append(parameter)
    return [{"params": params, "lr": lr, "weight_decay": decay} for (lr, decay), params in groups.items()]


def set_dropout(network: nn.Module, probability: float) -> None:
    """Use `probability` in every dropout layer of the network (during training; inference has none)."""
    for module in network.modules():
        if isinstance(module, nn.Dropout):
            module.p = probability
