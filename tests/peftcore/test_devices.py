"""Device and precision: CUDA, then MPS, then the CPU; bf16 autocast only where asked for or native."""

import pytest
import torch

from peftcore import devices, train
from peftcore.errors import TrainingError
from peftcore.events import ListSink

from .conftest import make_spec


def test_the_cpu_trains_in_full_precision_by_default():
    mps = torch.backends.mps.is_available()
    assert devices.pick_device().type == ("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    cpu = torch.device("cpu")
    assert devices.resolve_precision(cpu, "auto")[0] == "fp32"
    assert devices.resolve_precision(cpu, "bf16") == ("bf16", "as set")  # asked for: CPUs run bf16 autocast


def test_auto_takes_bf16_on_a_gpu_with_native_bf16_and_refuses_it_on_one_without(monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Test GPU")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert devices.resolve_precision(cuda, "auto")[0] == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert devices.resolve_precision(cuda, "auto")[0] == "fp32"
    with pytest.raises(TrainingError, match="Test GPU has no native bf16"):
        devices.resolve_precision(cuda, "bf16")
    with pytest.raises(TrainingError, match="not supported on Apple MPS"):
        devices.resolve_precision(torch.device("mps"), "bf16")


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("auto", torch.float32)])
def test_training_runs_its_forward_passes_in_the_precision_chosen(tiny_bert, sentiment_tsv, tmp_path, precision, dtype):
    seen = set()
    original = torch.nn.Linear.forward

    def record(self, x):
        out = original(self, x)
        seen.add(out.dtype)
        return out

    params = {"epochs": 2, "batch_size": 8, "learning_rate": 2e-2, "seed": 42, "patience": 0, "precision": precision}
    sink = ListSink()
    torch.nn.Linear.forward = record
    try:
        result = train.fit(make_spec(tiny_bert, sentiment_tsv, tmp_path, method="lora", params=params), sink)
    finally:
        torch.nn.Linear.forward = original
    assert seen == {dtype}
    assert sink.of("start")[0]["precision"] == result.done["report"]["params"]["precision"] == dtype_name(dtype)
    losses = [e["loss"] for e in sink.of("progress")]
    assert all(map(torch.isfinite, torch.tensor(losses)))
    # the trained weights stay in full precision whatever the forward passes ran in
    assert {p.dtype for p in result.model.parameters()} == {torch.float32}


def dtype_name(dtype) -> str:
    return {torch.bfloat16: "bf16", torch.float32: "fp32"}[dtype]


def test_a_4bit_base_is_refused_for_a_method_without_a_4bit_layer_and_on_a_cpu_worker(
    tiny_bert, sentiment_tsv, tmp_path
):
    params = {"epochs": 1, "batch_size": 8, "quantize": "4bit"}
    with pytest.raises(TrainingError, match="LoHa has no 4-bit layer in peft") as refused:
        train.fit(make_spec(tiny_bert, sentiment_tsv, tmp_path / "loha", method="loha", params=params), ListSink())
    assert refused.value.kind == "bad_params"
    # LoRA can, but not on this machine: refused before loading anything, with what to do
    with pytest.raises(TrainingError, match="needs a CUDA GPU and this worker trains on the CPU") as refused:
        train.fit(make_spec(tiny_bert, sentiment_tsv, tmp_path / "lora", method="lora", params=params), ListSink())
    assert "turn 4-bit loading off" in str(refused.value) and refused.value.kind == "bad_params"
