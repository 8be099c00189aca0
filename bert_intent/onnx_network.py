"""The network as one ONNX file: export and int8 quantization (at training time), an ONNX Runtime
session for CPU inference, and the torch weights read back from the file (torch backend, finetune).

The ONNX file is the only copy of the weights in a saved model. With `quantize`, ONNX Runtime's
dynamic quantization stores the matrix and embedding weights as int8 (a quarter of fp32); reading
them back for torch dequantizes them, so the torch backend computes with exactly the int8 model's
weights.
"""

import contextlib
import copy
import hashlib
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import onnx
import onnxruntime
import torch
from google.protobuf.message import DecodeError
from onnx import numpy_helper
from onnxruntime.capi import onnxruntime_pybind11_state as runtime_state
from onnxruntime.quantization import QuantType, quantize_dynamic
from torch import nn

from bert_intent.encoding import WORD_NGRAM_PRESENT, WORD_NGRAMS
from bert_intent.settings import usable_cores

# ONNX Runtime's quantizer renames a quantized initializer W into these three.
_QUANTIZED, _SCALE, _ZERO_POINT = "_quantized", "_scale", "_zero_point"
_OPSET = 17
# The graph's input beside the tokenizer's: which tokens each part of a message reads (network.py).
PART_MASK = "part_mask"
# On x86 CPUs without VNNI, ONNX Runtime's fast int8 product (uint8 activations by int8 weights) adds
# pairs of products in 16 bits, which can overflow; with this option it computes the exact (uint8 by
# uint8) product there instead. ONNX Runtime applies it only on such CPUs (onnxruntime_session_options_config_keys.h).
EXACT_INT8_PRODUCT = "session.x64quantprecision"

# What reading a missing or damaged ONNX file raises (ONNX Runtime's errors do not share a base class).
READ_ERRORS = (
    DecodeError,
    runtime_state.Fail,
    runtime_state.InvalidArgument,
    runtime_state.InvalidGraph,
    runtime_state.InvalidProtobuf,
    runtime_state.NoSuchFile,
    runtime_state.RuntimeException,
)


class _Predictions(torch.nn.Module):
    """The network as a function of its tokenizer's outputs and a `part_mask` (batch, parts, tokens:
    the tokens each part reads, the whole message being one part), returning the intent confidences
    of each part (batch, parts, intents) and the entity tag probabilities."""

    def __init__(self, network: nn.Module, input_names: Sequence[str]) -> None:
        super().__init__()
        self.network = network
        self.input_names = list(input_names)

    def forward(self, *inputs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        outputs = self.network(**dict(zip(self.input_names + [PART_MASK], inputs)))
        return outputs.confidences, outputs.tag_probabilities


def export(network: nn.Module, input_names: Sequence[str], path: Path, quantize: bool) -> Dict[str, List]:
    """Write `network` to `path` as ONNX (int8 weights with `quantize`), with the inputs `input_names`
    and PART_MASK; return where each torch parameter's values are in the file: {parameter: [initializer,
    transposed]}."""
    network = copy.deepcopy(network).float().cpu().eval()
    # A padded second row, so that tracing takes the masking path (an all-ones mask may be skipped).
    padded_row = torch.tensor([[1] * 8, [1] * 5 + [0] * 3])
    sample = {name: padded_row if name == "attention_mask" else torch.ones((2, 8), dtype=torch.long) for name in input_names}
    sample[PART_MASK] = torch.stack([padded_row, padded_row * (torch.arange(8) < 3)], dim=1)
    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
    dynamic_axes[PART_MASK] = {0: "batch", 1: "parts", 2: "sequence"}
    if WORD_NGRAMS in sample:  # (batch, n-grams), and their presence per part
        sample[WORD_NGRAMS] = torch.ones((2, 6), dtype=torch.long)
        sample[WORD_NGRAM_PRESENT] = torch.stack([padded_row[:, :6], padded_row[:, :6] * (torch.arange(6) < 2)], dim=1)
        dynamic_axes[WORD_NGRAMS] = {0: "batch", 1: "word_ngrams"}
        dynamic_axes[WORD_NGRAM_PRESENT] = {0: "batch", 1: "parts", 2: "word_ngrams"}
    input_names = list(input_names)
    with tempfile.TemporaryDirectory(prefix="bert-intent-onnx-") as scratch:
        exported = Path(scratch) / "float32.onnx"
        with warnings.catch_warnings():  # tracing warnings about code paths a classifier never takes
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _Predictions(network, input_names),
                tuple(sample.values()),
                str(exported),
                input_names=input_names + [PART_MASK],
                output_names=["confidences", "tag_probabilities"],
                dynamic_axes={
                    **dynamic_axes, "confidences": {0: "batch", 1: "parts"}, "tag_probabilities": {0: "batch", 1: "sequence"}
                },
                opset_version=_OPSET,
                do_constant_folding=True,
                dynamo=False,  # the TorchScript exporter writes one self-contained file that quantizes
            )
        graph_model = onnx.load(str(exported))
        # The parts' reshape leaves the intents' axis symbolic to shape inference: it is the labels' count.
        graph_model.graph.output[0].type.tensor_type.shape.dim[2].dim_value = network.config.num_labels
        onnx.save(graph_model, str(exported))
        names = _initializer_names(network, graph_model)
        if quantize:
            with _quiet_root_logger():  # it advises an optional pre-processing step on every call
                quantize_dynamic(str(exported), str(path), weight_type=QuantType.QInt8)
        else:
            os.replace(exported, path)
    return _locations(network, names, _initializers(path))


def _initializer_names(network: nn.Module, graph_model: onnx.ModelProto) -> Dict[str, str]:
    """The initializer holding each parameter's values, found by value: the exporter renames the
    weights it transposes and merges initializers with equal values, so names alone do not say."""
    by_value: Dict[Tuple[Tuple[int, ...], str], str] = {}
    for initializer in graph_model.graph.initializer:
        array = numpy_helper.to_array(initializer)
        by_value.setdefault(_fingerprint(array), initializer.name)
        if array.ndim == 2:
            by_value.setdefault(_fingerprint(array.T), initializer.name)
    names = {}
    for name, parameter in network.named_parameters():
        found = by_value.get(_fingerprint(parameter.detach().numpy()))
        if found is None:
            raise RuntimeError(f"The ONNX export has no initializer with the values of parameter '{name}'.")
        names[name] = found
    return names


def _fingerprint(array: np.ndarray) -> Tuple[Tuple[int, ...], str]:
    return array.shape, hashlib.sha1(np.ascontiguousarray(array, dtype=np.float32).tobytes()).hexdigest()


def _locations(network: nn.Module, names: Dict[str, str], initializers: Dict[str, onnx.TensorProto]) -> Dict[str, List]:
    """{parameter: [initializer, transposed]} for the final file. The quantizer may store a weight
    transposed under its old name (Gemm becomes MatMulInteger), so the orientation is the one whose
    values match the parameter, within one int8 step."""
    locations: Dict[str, List] = {}
    for name, parameter in network.named_parameters():
        expected = parameter.detach().numpy()
        stored = _values(initializers, names[name])
        tolerance = float(np.abs(expected).max(initial=0.0)) / 127 + 1e-6
        for transposed in (False, True):
            candidate = stored.T if transposed else stored
            if candidate.shape == expected.shape and float(np.abs(candidate - expected).max(initial=0.0)) <= tolerance:
                locations[name] = [names[name], transposed]
                break
        else:
            raise RuntimeError(f"The ONNX file's values for parameter '{name}' do not match it.")
    return locations


def _initializers(path: Path) -> Dict[str, onnx.TensorProto]:
    return {item.name: item for item in onnx.load(str(path)).graph.initializer}


def _values(initializers: Dict[str, onnx.TensorProto], name: str) -> np.ndarray:
    """An initializer as float32, dequantized if the quantizer replaced it."""
    if name in initializers:
        return numpy_helper.to_array(initializers[name]).astype(np.float32)
    quantized = numpy_helper.to_array(initializers[name + _QUANTIZED]).astype(np.float32)
    scale = numpy_helper.to_array(initializers[name + _SCALE]).astype(np.float32)
    zero_point = numpy_helper.to_array(initializers[name + _ZERO_POINT]).astype(np.float32)
    return (quantized - zero_point) * scale


def torch_weights(path: Path, locations: Dict[str, List]) -> Dict[str, torch.Tensor]:
    """The parameters as float32 tensors, read (and dequantized) from the ONNX file at `path`."""
    initializers = _initializers(path)
    weights = {}
    for parameter, (initializer, transposed) in locations.items():
        array = _values(initializers, initializer)
        weights[parameter] = torch.from_numpy(np.ascontiguousarray(array.T if transposed else array))
    return weights


def session(path: Path, threads: Optional[int]) -> onnxruntime.InferenceSession:
    """A CPU ONNX Runtime session, exact in int8 on every x86 CPU (see EXACT_INT8_PRODUCT); `threads`
    None uses every core this process may run on (`usable_cores`)."""
    options = onnxruntime.SessionOptions()
    options.add_session_config_entry(EXACT_INT8_PRODUCT, "1")
    options.intra_op_num_threads = threads or usable_cores()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def output_widths(runtime_session: onnxruntime.InferenceSession) -> Tuple[int, int]:
    """How many intents and entity tags the network in `runtime_session` scores."""
    confidences, tag_probabilities = runtime_session.get_outputs()
    return int(confidences.shape[-1]), int(tag_probabilities.shape[-1])


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)
