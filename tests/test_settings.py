"""Config validation: defaults, unknown keys, bad values, device resolution."""

import dataclasses
import subprocess
import sys

import joblib
import pytest
import torch

from bert_intent import settings
from bert_intent.errors import ConfigError


def test_defaults_are_the_documented_ones() -> None:
    resolved = settings.validate({})
    assert resolved.model_name == "bert-base-chinese"
    assert (resolved.epochs, resolved.learning_rate) == (0, None)  # chosen from the data and the checkpoint
    assert resolved.ranking_length == 10
    assert resolved.device == "auto"
    assert (resolved.inference_backend, resolved.quantize, resolved.cpu_threads) == ("auto", True, None)


@pytest.mark.parametrize("backend, device, resolved", [
    ("auto", "cpu", "onnx"), ("auto", "cuda", "torch"), ("auto", "mps", "torch"), ("onnx", "cuda", "onnx"), ("torch", "cpu", "torch"),
])
def test_auto_backend_is_onnx_on_a_cpu_and_torch_on_a_gpu(backend: str, device: str, resolved: str) -> None:
    assert settings.resolve_backend(backend, torch.device(device)) == resolved


def test_unknown_key_is_rejected_with_its_name_and_the_allowed_keys() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key\(s\) 'epoch'.*Allowed keys: model_name"):
        settings.validate({"epoch": 3})


@pytest.mark.parametrize(
    "key, value",
    [
        ("epochs", -1),
        ("epochs", 2.5),
        ("epochs", True),
        ("batch_size", "16"),
        ("learning_rate", -1),
        ("learning_rate", "fast"),
        ("learning_rate", float("nan")),
        ("warmup_ratio", 1.0),
        ("max_length", 2),
        ("ranking_length", -1),
        ("device", "tpu"),
        ("inference_backend", "tensorrt"),
        ("quantize", "int8"),
        ("cpu_threads", 0),
        ("model_name", ""),
        ("model_name", None),
        ("pretrained", "no"),
        ("pretrained", 0),
        ("scratch_size", "huge"),
        ("scratch_size", ["tiny"]),
    ],
)
def test_invalid_value_is_rejected_naming_the_key_and_what_is_allowed(key: str, value: object) -> None:
    with pytest.raises(ConfigError, match=rf"'{key}' must be .+, got"):
        settings.validate({key: value})


def test_numbers_written_as_text_by_yaml_are_accepted() -> None:
    assert settings.validate({"learning_rate": "2e-5"}).learning_rate == 2e-5


def test_auto_device_picks_what_is_available() -> None:
    expected = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    assert settings.resolve_device("auto").type == expected
    assert settings.resolve_device("cpu").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="device 'cuda' was requested but is not available"):
        settings.resolve_device("cuda")


def test_mixed_precision_is_bf16_only_where_the_hardware_computes_it() -> None:
    cpu = torch.device("cpu")
    assert settings.resolve_precision("auto", cpu) == ("bf16" if settings.cpu_computes_bf16() else "no")
    assert settings.resolve_precision("bf16", cpu) == "bf16"  # asked for: emulated where the CPU lacks it
    assert settings.resolve_precision("no", torch.device("mps")) == "no"
    assert settings.resolve_precision("auto", torch.device("mps")) == "no"
    with pytest.raises(ConfigError, match="mixed_precision 'fp16' is not available for training on cpu"):
        settings.resolve_precision("fp16", cpu)


def test_settings_are_typed_frozen_and_have_every_key() -> None:
    resolved = settings.validate({"epochs": 3})
    assert [field.name for field in dataclasses.fields(resolved)] == list(settings.KEYS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        resolved.epochs = 4  # type: ignore[misc]
    assert resolved.replace(epochs=5).epochs == 5 and resolved.epochs == 3
    with pytest.raises(ConfigError, match="'epochs' must be"):
        resolved.replace(epochs=-1)


def test_validating_a_configuration_loads_no_torch() -> None:
    code = "import sys; from bert_intent import settings; settings.validate({}); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_usable_cores_follow_joblibs_count_and_its_override(monkeypatch: pytest.MonkeyPatch) -> None:
    assert settings.usable_cores() == joblib.cpu_count()  # affinity and the container's CPU quota
    monkeypatch.setenv("LOKY_MAX_CPU_COUNT", "1")
    assert settings.usable_cores() == 1


def test_torch_threads_are_capped_inside_the_block_and_restored_after(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    monkeypatch.setattr(settings, "usable_cores", lambda: 1)
    with settings.torch_threads_within_quota():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
