"""DEFT's density loss (peftcore/density.py): the hooks find every feed-forward non-linearity, the loss term is
there and falls, and a run with it ends with fewer firing units than the same run without it."""

import pytest
import torch

from peftcore.density import DensityMeter, activation_modules
from peftcore.errors import BAD_PARAMS, TrainingError
from peftcore.events import ListSink
from peftcore.tasks import load_tokenizer
from peftcore.tasks.text_classification import collate, encode, load_model
from peftcore.train import fit, run
from tests.peftcore.conftest import make_spec
from tests.tiny_models import sentiment_rows


@pytest.mark.parametrize("shape, suffix", [("llama", "mlp.act_fn"), ("gpt2", "mlp.act"), ("t5", "DenseReluDense.act")])
def test_the_feed_forward_non_linearity_of_every_block_is_found(tiny_shape, shape, suffix):
    model, _ = load_model(tiny_shape(shape), ["0", "1"], 0)
    names = [name for name, _ in activation_modules(model)]
    assert names and all(name.endswith(suffix) for name in names)
    assert len(names) >= 2  # one per block (T5: encoder and decoder blocks)


def test_bert_blocks_each_give_their_intermediate_activation(tiny_bert):
    model, _ = load_model(tiny_bert, ["0", "1"], 0)
    names = [name for name, _ in activation_modules(model)]
    assert names == [f"bert.encoder.layer.{i}.intermediate.intermediate_act_fn" for i in range(2)]


def test_the_penalty_is_a_smooth_density_that_training_on_it_lowers(tiny_bert):
    tokenizer = load_tokenizer(tiny_bert)
    torch.manual_seed(0)
    model, _ = load_model(tiny_bert, ["0", "1"], tokenizer.pad_token_id)
    batch = collate(encode(tokenizer, [t for t, _ in sentiment_rows(16, seed=1)], 32), tokenizer.pad_token_id)
    meter = DensityMeter(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    penalties = []
    for _ in range(10):
        meter.start(batch["attention_mask"])
        model(**batch)
        penalty = meter.penalty()
        assert 0.0 < float(penalty) < 1.0 and penalty.requires_grad
        penalties.append(float(penalty))
        optimizer.zero_grad()
        penalty.backward()
        optimizer.step()
    assert penalties[-1] < 0.8 * penalties[0]
    model(**batch)  # outside start()/penalty() the hooks add nothing up
    assert meter.penalty() == 0.0


def test_a_run_with_the_density_loss_ends_with_fewer_firing_units_than_without(tiny_bert, sentiment_tsv, tmp_path):
    reports = {}
    for name, extra in (("measured", {"measure_density": True}), ("deft", {"density_loss": 2.0})):
        params = {"epochs": 3, "batch_size": 16, "max_rows": 64, "max_length": 32, "seed": 3, **extra}
        spec = make_spec(tiny_bert, sentiment_tsv, tmp_path / name, params=params, method="lora")
        reports[name] = fit(spec, ListSink()).done["report"]["activation_density"]
    measured, deft = reports["measured"], reports["deft"]
    assert measured["before"] == deft["before"]  # the same untrained model, the same rows
    assert 0.0 < measured["before"] < 1.0 and measured["layers"] == deft["layers"] == 2
    assert deft["loss_weight"] == 2.0 and measured["loss_weight"] == 0.0
    assert deft["after"] < deft["before"] and deft["after"] < measured["after"]


def test_without_either_option_the_report_has_no_density(tiny_bert, sentiment_tsv, tmp_path):
    spec = make_spec(tiny_bert, sentiment_tsv, tmp_path / "out", params={"epochs": 1, "max_rows": 32})
    assert "activation_density" not in fit(spec, ListSink()).done["report"]


def test_a_model_without_a_named_feed_forward_activation_is_refused_with_the_reason(
    tiny_bert, sentiment_tsv, tmp_path, monkeypatch
):
    monkeypatch.setattr("peftcore.density.ACTIVATION_NAMES", ("no_such_layer",))
    spec = make_spec(tiny_bert, sentiment_tsv, tmp_path / "out", params={"epochs": 1, "density_loss": 0.5})
    with pytest.raises(TrainingError) as raised:
        run(spec, ListSink())
    assert raised.value.kind == BAD_PARAMS and "no feed-forward activation found" in raised.value.message
