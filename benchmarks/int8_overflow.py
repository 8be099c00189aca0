"""What a CPU without VNNI would make of a trained model's int8 network, emulated on any machine.

    .venv/bin/python benchmarks/int8_overflow.py MODEL.tar.gz TEST_NLU.yml [--limit 300]

On x86 CPUs without VNNI (AVX2, or AVX-512 before it), ONNX Runtime's fast int8 matrix product
multiplies uint8 activations by int8 weights and adds each pair of products in a 16-bit integer that
saturates (VPMADDUBSW). bert-intent's sessions ask for the exact product there
(`onnx_network.EXACT_INT8_PRODUCT`); this script shows what that prevents, for one trained model.
It reads the archive's network four ways on the test file's messages (of intents the model knows): with
torch on the same (dequantized) weights without quantizing the activations; with ONNX Runtime as this
machine serves it; with onnx's reference evaluator computing the exact int8 product (which must agree
with ONNX Runtime on a CPU with VNNI); and with the reference evaluator adding each pair of products in
16 bits with saturation, as the fast kernel does. It prints each one's intent accuracy, mean top
confidence, agreement with torch and largest difference from the exact int8 product, and the share of
product pairs that saturated.
"""

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bert_intent.model import IntentModel  # noqa: E402
from bert_intent.model_files import NETWORK_FILE  # noqa: E402
from bert_intent.parts import read_nlu, unpack  # noqa: E402
from bert_intent.settings import cpu_flags  # noqa: E402

_INT16 = (-(2**15), 2**15 - 1)
_ROWS_AT_ONCE = 8
saturated_pairs = [0, 0]  # pairs of products that saturated, pairs computed


def _zero_point(value: Optional[np.ndarray]) -> np.ndarray:
    return np.zeros(1, dtype=np.int64) if value is None else np.asarray(value, dtype=np.int64).reshape(-1)


def exact_product(a: np.ndarray, b: np.ndarray, a_zero_point: Any = None, b_zero_point: Any = None) -> np.ndarray:
    """ONNX's MatMulInteger: (a - a_zero_point) @ (b - b_zero_point) in int32."""
    product = (a.astype(np.int64) - _zero_point(a_zero_point)[0]) @ (b.astype(np.int64) - _zero_point(b_zero_point))
    return product.astype(np.int32)


def saturated_product(a: np.ndarray, b: np.ndarray, a_zero_point: Any = None, b_zero_point: Any = None) -> np.ndarray:
    """MatMulInteger as the U8S8 kernel of a CPU without VNNI computes it: the raw uint8 activations
    times the int8 weights, each pair of neighbouring products along the inner dimension added in 16
    bits with saturation, the pairs added in 32 bits, the zero points corrected exactly afterwards."""
    a64, b64 = a.astype(np.int64), b.astype(np.int64)
    if a64.shape[-1] % 2:
        a64 = np.concatenate([a64, np.zeros((*a64.shape[:-1], 1), dtype=np.int64)], axis=-1)
        b64 = np.concatenate([b64, np.zeros((1, b64.shape[1]), dtype=np.int64)], axis=0)
    rows = a64.reshape(-1, a64.shape[-1])
    total = np.zeros((len(rows), b64.shape[1]), dtype=np.int64)
    for row in range(0, len(rows), _ROWS_AT_ONCE):
        block = rows[row : row + _ROWS_AT_ONCE]
        pairs = block[:, 0::2, None] * b64[0::2] + block[:, 1::2, None] * b64[1::2]  # rows x pairs x columns
        saturated_pairs[0] += int(((pairs < _INT16[0]) | (pairs > _INT16[1])).sum())
        saturated_pairs[1] += pairs.size
        total[row : row + _ROWS_AT_ONCE] = np.clip(pairs, *_INT16).sum(axis=1)
    total = total.reshape(*a64.shape[:-1], b64.shape[1])
    a_zero, b_zero = _zero_point(a_zero_point)[0], _zero_point(b_zero_point)
    total += -a_zero * b.astype(np.int64).sum(axis=0) - b_zero * a.astype(np.int64).sum(axis=-1, keepdims=True)
    total += a.shape[-1] * a_zero * b_zero
    return total.astype(np.int32)


def _matmul_integer(product: Callable[..., np.ndarray]) -> type:
    """onnx's reference implementation of MatMulInteger, computing with `product`."""

    def run(self: OpRun, a: np.ndarray, b: np.ndarray, a_zero_point: Any = None, b_zero_point: Any = None) -> Tuple[np.ndarray]:
        return (product(a, b, a_zero_point, b_zero_point),)

    return type("MatMulInteger", (OpRun,), {"op_domain": "", "_run": run})


class DequantizeLinear(OpRun):
    """ONNX's DequantizeLinear (opset 17 is missing from some onnx releases' reference evaluator)."""

    op_domain = ""

    def _run(self, x, x_scale, x_zero_point=None, axis=1, block_size=0, **_: Any):  # noqa: ANN001, ANN202
        zero = np.zeros(1, dtype=np.float32) if x_zero_point is None else x_zero_point.astype(np.float32)
        if np.ndim(x_scale) == 1 and x.ndim > 1 and x_scale.size > 1:
            shape = [1] * x.ndim
            shape[axis] = -1
            x_scale, zero = x_scale.reshape(shape), zero.reshape(shape)
        return (((x.astype(np.float32) - zero) * x_scale).astype(np.float32),)


class EmulatedSession:
    """What `IntentModel` needs of an ONNX Runtime session, computed by onnx's reference evaluator."""

    def __init__(self, path: Path, saturating: bool) -> None:
        product = _matmul_integer(saturated_product if saturating else exact_product)
        self.evaluator = ReferenceEvaluator(str(path), new_ops=[product, DequantizeLinear])

    def run(self, _: Any, feeds: Dict[str, np.ndarray]) -> List[np.ndarray]:
        return self.evaluator.run(None, feeds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a Rasa model archive (.tar.gz) with a BertIntentClassifier")
    parser.add_argument("nlu", type=Path, help="a Rasa NLU file of test messages")
    parser.add_argument("--limit", type=int, default=300, help="at most this many messages (a seeded sample)")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bert-intent-int8-") as scratch:
        directory = unpack(arguments.model, Path(scratch))
        model = IntentModel.load(directory, torch.device("cpu"), "onnx")
        texts, truth = _known_messages(model, arguments.nlu, arguments.limit)
        has_vnni = bool(cpu_flags() & {"avx512_vnni", "avx_vnni"})
        print(f"{len(texts)} messages; this CPU {'has' if has_vnni else 'has no'} VNNI.")
        confidences = {"torch, the same weights in float32": IntentModel.load(directory, torch.device("cpu"), "torch").confidences(texts)}
        for name, session in (
            ("ONNX Runtime here", model.session),
            ("exact int8 product (emulated)", EmulatedSession(directory / NETWORK_FILE, saturating=False)),
            ("fast kernel without VNNI (emulated)", EmulatedSession(directory / NETWORK_FILE, saturating=True)),
        ):
            model.session = session
            confidences[name] = model.confidences(texts)
    reference, exact = confidences["torch, the same weights in float32"], confidences["exact int8 product (emulated)"]
    print(f"{'':<38} accuracy  mean top confidence  same top intent as torch  largest difference from exact int8")
    for name, values in confidences.items():
        print(f"{name:<38} {np.mean(values.argmax(axis=1) == truth):.4f}    {values.max(axis=1).mean():.4f}               "
              f"{np.mean(values.argmax(axis=1) == reference.argmax(axis=1)):.4f}                    {np.abs(values - exact).max():.4f}")
    print(f"Product pairs saturated: {saturated_pairs[0]} of {saturated_pairs[1]} ({saturated_pairs[0] / max(1, saturated_pairs[1]):.2e}).")
    return 0


def _known_messages(model: IntentModel, nlu: Path, limit: int) -> Tuple[List[str], np.ndarray]:
    texts, intents = read_nlu(nlu)
    known = [(text, intent) for text, intent in zip(texts, intents) if intent in model.labels]
    if len(known) > limit:
        known = [known[index] for index in sorted(np.random.default_rng(0).choice(len(known), limit, replace=False))]
    return [text for text, _ in known], np.array([model.labels.index(intent) for _, intent in known])


if __name__ == "__main__":
    sys.exit(main())
