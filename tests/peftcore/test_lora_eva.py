"""LoRA's EVA initialisation (arxiv.org/abs/2410.07170): before the first step, each down-projection is set from
the SVD of the training rows' activations at its layer, so its rows are orthonormal directions of the data; the
default init draws them at random. The whole run then trains, saves and reloads like any LoRA (the method matrix
has the eva case)."""

from types import SimpleNamespace

import torch

from peftcore.events import ListSink
from peftcore.methods import get_method
from peftcore.schema import validate_params
from peftcore.tasks import load_tokenizer
from peftcore.tasks.text_classification import collate, encode, load_model
from peftcore.train import fit
from tests.peftcore.conftest import make_spec
from tests.tiny_models import sentiment_rows


def _down_projections(model) -> list[torch.Tensor]:
    return [p.detach() for n, p in model.named_parameters() if "lora_A" in n]


def _orthonormal(a: torch.Tensor) -> bool:
    return torch.allclose(a @ a.T, torch.eye(a.shape[0]), atol=1e-4)


def test_eva_sets_each_down_projection_to_orthonormal_directions_of_the_data(tiny_bert):
    lora = get_method("lora")
    tokenizer = load_tokenizer(tiny_bert)
    texts = [t for t, _ in sentiment_rows(64, seed=2)]
    batches = [collate(encode(tokenizer, texts[i : i + 16], 32), tokenizer.pad_token_id) for i in range(0, 64, 16)]
    built = {}
    for init in ("default", "eva"):
        torch.manual_seed(0)
        model, new_modules = load_model(tiny_bert, ["0", "1"], tokenizer.pad_token_id)
        params = validate_params(lora.params, {"init": init, "r": 4})[0]
        model = lora.build(model, params, "text-classification", new_modules=new_modules)
        lora.data_init(model, params, SimpleNamespace(inputs=lambda: batches, resuming=False))
        built[init] = _down_projections(model)
    assert len(built["eva"]) == 12 and all(a.shape == (4, 32) or a.shape == (4, 64) for a in built["eva"])
    assert all(_orthonormal(a) for a in built["eva"])
    assert not any(_orthonormal(a) for a in built["default"])


def test_a_job_with_eva_reports_the_phase_and_trains(tiny_bert, sentiment_tsv, tmp_path):
    spec = make_spec(
        tiny_bert,
        sentiment_tsv,
        tmp_path / "out",
        method_params={"init": "eva"},
        params={"epochs": 1, "batch_size": 16, "max_rows": 48, "max_length": 32},
    )
    sink = ListSink()
    fit(spec, sink)
    start = next(e for e in sink.events if e["event"] == "start")
    wanted = f"initialising LoRA from {start['train_rows']} training rows"
    assert wanted in sink.phases, sink.phases
    assert sink.events[-1]["event"] == "done"
