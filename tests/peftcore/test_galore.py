"""GaLore (peftcore/galore.py): each projected matrix's moments are rank x its longer side, its update has at most
that rank, vectors step exactly as AdamW, a saved optimiser state resumes exactly, and a full fine-tuning run with
it learns while its optimiser holds a fraction of AdamW's state."""

import copy

import pytest
import torch

from peftcore.events import ListSink
from peftcore.galore import GaLoreAdamW
from peftcore.loop import make_optimizer
from peftcore.train import fit

RANK = 4


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(24, 48), torch.nn.Tanh(), torch.nn.Linear(48, 16))


def _data():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(64, 24, generator=generator)
    return x, torch.tanh(x @ torch.randn(24, 16, generator=generator))


def _steps(model, optimizer, count: int) -> list[float]:
    x, y = _data()
    losses = []
    for _ in range(count):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    return losses


def _galore(model, **group):
    settings = {"rank": RANK, "scale": 1.0, "update_gap": 5, **group}
    return make_optimizer(model, 1e-2, 0.0, galore=settings)


def test_moments_are_low_rank_and_each_update_has_at_most_the_rank():
    model = _model()
    optimizer = _galore(model)
    assert isinstance(optimizer, GaLoreAdamW)
    before = [p.detach().clone() for p in model.parameters()]
    _steps(model, optimizer, 1)
    first, second = model[0].weight, model[2].weight  # (48, 24): right side projected; (16, 48): left side
    assert optimizer.state[first]["exp_avg"].shape == (48, RANK)
    assert optimizer.state[second]["exp_avg"].shape == (RANK, 48)
    assert optimizer.state[model[0].bias]["exp_avg"].shape == (48,)  # a vector: plain AdamW
    for parameter, old in zip((first, second), (before[0], before[2])):
        change = parameter.detach() - old
        assert change.abs().max() > 0 and torch.linalg.matrix_rank(change) <= RANK


def test_vectors_step_exactly_as_adamw_and_the_loss_falls():
    galore_model, adamw_model = _model(), _model()
    galore_opt, adamw_opt = _galore(galore_model), make_optimizer(adamw_model, 1e-2, 0.0)
    assert type(adamw_opt) is torch.optim.AdamW
    # the same first gradients: the bias of the last layer sees the same loss gradient before any step
    _steps(galore_model, galore_opt, 1)
    _steps(adamw_model, adamw_opt, 1)
    assert torch.allclose(galore_model[2].bias, adamw_model[2].bias, atol=1e-7)
    losses = _steps(galore_model, galore_opt, 60)
    assert losses[-1] < 0.5 * losses[0]


def test_a_saved_state_resumes_exactly_across_a_projection_refresh():
    model = _model()
    optimizer = _galore(model)
    _steps(model, optimizer, 3)
    saved_model, saved_state = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())
    _steps(model, optimizer, 4)  # past step 5: a new projection

    resumed = _model()
    resumed.load_state_dict(saved_model)
    again = _galore(resumed)
    again.load_state_dict(saved_state)
    _steps(resumed, again, 4)
    for ours, theirs in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(ours, theirs)


def test_a_full_fine_tuning_run_learns_with_a_fraction_of_adamws_state(tiny_model_dir, sst2_sample, tmp_path):
    def train(**params) -> dict:
        spec = {
            "task": "text-classification",
            "model_path": str(tiny_model_dir),
            "method": "full",
            "train_file": str(sst2_sample),
            "output_dir": str(tmp_path / str(len(params))),
            "text_column": "sentence",
            "label_column": "label",
            "params": {"epochs": 3, "batch_size": 16, "max_length": 32, "learning_rate": 1e-3, **params},
            "metadata": {"base_model": "local:tiny"},
        }
        return fit(spec, ListSink()).done["report"]

    adamw = train()
    galore = train(optimizer="galore", galore_rank=4)
    assert galore["params"]["optimizer"] == "galore"
    ratio = galore["efficiency"]["optimizer_state_bytes"] / adamw["efficiency"]["optimizer_state_bytes"]
    assert ratio < 0.5, ratio
    assert galore["metrics"]["eval_loss"] < galore["baseline_metrics"]["eval_loss"]


@pytest.mark.parametrize("shape", [(6, 6), (3, 40)])
def test_matrices_no_larger_than_the_rank_are_not_projected(shape):
    parameter = torch.nn.Parameter(torch.randn(*shape))
    optimizer = GaLoreAdamW([{"params": [parameter], "rank": 6, "scale": 1.0, "update_gap": 5}], lr=1e-2)
    parameter.grad = torch.randn(*shape)
    optimizer.step()
    assert optimizer.state[parameter]["exp_avg"].shape == shape and "projector" not in optimizer.state[parameter]
