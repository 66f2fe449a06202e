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
            "output_dir": str(tmp_path / "-".join(map(str, params.values()))),
            "text_column": "sentence",
            "label_column": "label",
            "params": {"epochs": 3, "batch_size": 16, "max_length": 32, "learning_rate": 1e-3, **params},
            "metadata": {"base_model": "local:tiny"},
        }
        return fit(spec, ListSink()).done["report"]

    adamw = train()
    # Natural GaLore also keeps 10 projected gradients a matrix: on this 32-wide model that is most of AdamW's
    # two full moments (on MiniLM's 384-wide ones, at rank 8, about a tenth)
    for optimizer, most in (("galore", 0.5), ("natural_galore", 0.9)):
        galore = train(optimizer=optimizer, galore_rank=4)
        assert galore["params"]["optimizer"] == optimizer
        ratio = galore["efficiency"]["optimizer_state_bytes"] / adamw["efficiency"]["optimizer_state_bytes"]
        assert ratio < most, (optimizer, ratio)
        assert galore["metrics"]["eval_loss"] < galore["baseline_metrics"]["eval_loss"]


@pytest.mark.parametrize("shape", [(6, 6), (3, 40)])
def test_matrices_no_larger_than_the_rank_are_not_projected(shape):
    parameter = torch.nn.Parameter(torch.randn(*shape))
    optimizer = GaLoreAdamW([{"params": [parameter], "rank": 6, "scale": 1.0, "update_gap": 5}], lr=1e-2)
    parameter.grad = torch.randn(*shape)
    optimizer.step()
    assert optimizer.state[parameter]["exp_avg"].shape == shape and "projector" not in optimizer.state[parameter]


def test_the_natural_gradient_is_the_inverse_fisher_times_the_gradient():
    from peftcore.galore import NATURAL_DAMPING, natural_gradient

    generator = torch.Generator().manual_seed(3)
    history, grad = torch.randn(5, 12, generator=generator, dtype=torch.float64), torch.randn(12, dtype=torch.float64)
    damping = NATURAL_DAMPING * history.square().mean()
    fisher = damping * torch.eye(12, dtype=torch.float64) + history.T @ history / 5
    torch.testing.assert_close(natural_gradient(grad, history), torch.linalg.solve(fisher, grad))
    # across everything the history has seen, the step is only divided by the damping; along it, by more
    basis = torch.linalg.qr(history.T).Q  # (12, 5): the history's span
    across = grad - basis @ (basis.T @ grad)
    torch.testing.assert_close(natural_gradient(across, history), across / damping)
    along = history[0] / history[0].norm()
    assert natural_gradient(along, history).norm() < 0.9 * (along / damping).norm()


def test_natural_galore_keeps_a_history_that_restarts_with_the_projection_and_resumes_exactly():
    model = _model()
    optimizer = _galore(model, history=3)
    _steps(model, optimizer, 4)
    state = optimizer.state[model[0].weight]
    assert state["history"].shape == (3, 48 * RANK) and state["history_seen"] == 4
    saved_model, saved_state = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())
    losses = _steps(model, optimizer, 3)  # step 6 takes a new projection: the history starts again
    assert optimizer.state[model[0].weight]["history_seen"] == 2
    assert losses[-1] < _steps(_model(), _galore(_model()), 1)[0]

    resumed = _model()
    resumed.load_state_dict(saved_model)
    again = _galore(resumed, history=3)
    again.load_state_dict(saved_state)
    _steps(resumed, again, 3)
    for ours, theirs in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(ours, theirs)


def test_natural_galore_differs_from_galore_and_learns():
    plain, natural = _model(), _model()
    plain_losses = _steps(plain, _galore(plain), 40)
    natural_losses = _steps(natural, _galore(natural, history=4), 40)
    assert natural_losses[-1] < 0.5 * natural_losses[0]
    assert natural_losses[-1] < plain_losses[-1]  # faster than GaLore on this problem (NATURAL_DAMPING's note)


@pytest.mark.parametrize("optimizer", ["galore", "natural_galore"])
def test_a_run_resumes_exactly_across_a_projection_refresh(tiny_bert, sentiment_tsv, tmp_path, optimizer):
    from tests.peftcore.conftest import make_spec
    from tests.peftcore.test_checkpoints import SMALL, assert_resumes_exactly

    # nine steps, a new projection every three: both checkpoints fall between refreshes with history kept
    params = {**SMALL, "optimizer": optimizer, "galore_rank": 4, "galore_update_gap": 3}

    def make(out, **overrides):
        return make_spec(tiny_bert, sentiment_tsv, out, method="full", params=params, **overrides)

    assert_resumes_exactly(make, tmp_path)
