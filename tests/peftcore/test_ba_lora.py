"""BA-LoRA's regularisers (peftcore/ba_lora.py): each term is what it says on a known batch, training on it moves
the features the way it claims, a whole run with them trains and reloads, and a task without a head is refused."""

import pytest
import torch
import torch.nn.functional as F

import peftcore
from peftcore.ba_lora import TOP_K, BiasAlleviation, head_module
from peftcore.errors import BAD_PARAMS, TrainingError
from peftcore.events import ListSink
from peftcore.methods import get_method
from peftcore.schema import validate_params
from peftcore.tasks import load_tokenizer
from peftcore.tasks.text_classification import collate, encode, load_model
from peftcore.train import fit, run
from tests.peftcore.conftest import make_spec
from tests.tiny_models import sentiment_rows

TASK = "text-classification"


def _lora_model(tiny_bert):
    tokenizer = load_tokenizer(tiny_bert)
    torch.manual_seed(0)
    model, new_modules = load_model(tiny_bert, ["0", "1"], tokenizer.pad_token_id)
    lora = get_method("lora")
    model = lora.build(model, validate_params(lora.params, {})[0], TASK, new_modules=new_modules)
    batch = collate(encode(tokenizer, [t for t, _ in sentiment_rows(16, seed=1)], 32), tokenizer.pad_token_id)
    return model, new_modules, batch


def _features(model, new_modules, batch) -> torch.Tensor:
    captured = []
    handle = head_module(model, new_modules).register_forward_pre_hook(lambda m, a: captured.append(a[0]))
    model(**batch)
    handle.remove()
    return captured[0]


def _train_on_penalty(model, regulariser, batch, steps=15, lr=1e-2) -> list[float]:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    values = []
    for _ in range(steps):
        regulariser.start(batch)
        model(**batch)
        penalty = regulariser.penalty(batch)
        values.append(float(penalty))
        optimizer.zero_grad()
        penalty.backward()
        optimizer.step()
    return values


def test_each_term_matches_its_formula_on_a_known_batch(tiny_bert):
    model, new_modules, batch = _lora_model(tiny_bert)
    model.eval()  # no dropout: the same features twice
    with torch.no_grad():
        z = _features(model, new_modules, batch).float()
        centred = z - z.mean(0)
        covariance = centred.T @ centred / (len(z) - 1)
        diversity = (covariance - torch.diag(torch.diagonal(covariance))).pow(2).sum() / z.shape[-1]
        values = torch.linalg.svdvals(z)
        svd = -values[:TOP_K].sum() / values.sum()
        for weights, expected in (((0, 2.0, 0), 2.0 * diversity), ((0, 0, 3.0), 3.0 * svd)):
            regulariser = BiasAlleviation(model, head_module(model, new_modules), *weights)
            regulariser.start(batch)
            model(**batch)
            assert torch.allclose(regulariser.penalty(batch), expected, rtol=1e-4)
            regulariser.remove()
        # a new adapter changes nothing yet: the features equal the untouched model's
        consistency = BiasAlleviation(model, head_module(model, new_modules), 1.0, 0, 0)
        consistency.start(batch)
        model(**batch)
        assert float(consistency.penalty(batch)) == pytest.approx(0.0, abs=1e-10)


def test_training_on_diversity_decorrelates_and_on_svd_concentrates_the_features(tiny_bert):
    for weights in ((0, 1.0, 0), (0, 0, 1.0)):
        model, new_modules, batch = _lora_model(tiny_bert)
        regulariser = BiasAlleviation(model, head_module(model, new_modules), *weights)
        values = _train_on_penalty(model, regulariser, batch)
        assert values[-1] < values[0] - 1e-4, (weights, values)


def test_consistency_keeps_the_features_near_the_untouched_models(tiny_bert):
    distances = {}
    for weight in (0.0, 50.0):
        model, new_modules, batch = _lora_model(tiny_bert)
        targets = torch.tensor([int(label) for _, label in sentiment_rows(16, seed=1)])
        regulariser = BiasAlleviation(model, head_module(model, new_modules), weight, 0, 0)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-2)
        for _ in range(15):
            regulariser.start(batch)
            loss = F.cross_entropy(model(**batch).logits, targets)
            if weight:
                loss = loss + regulariser.penalty(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            tuned = F.normalize(_features(model, new_modules, batch).float(), dim=-1)
            with model.disable_adapter():
                untouched = F.normalize(_features(model, new_modules, batch).float(), dim=-1)
        distances[weight] = float(F.mse_loss(tuned, untouched))
    assert distances[50.0] < 0.5 * distances[0.0]


def test_a_run_with_all_three_trains_saves_and_reloads_without_hooks(tiny_bert, sentiment_tsv, tmp_path):
    spec = make_spec(
        tiny_bert,
        sentiment_tsv,
        tmp_path / "out",
        method_params={"ba_consistency": 1.0, "ba_diversity": 0.1, "ba_svd": 0.1},
        params={"epochs": 2, "batch_size": 16, "max_rows": 48, "max_length": 32},
    )
    result = fit(spec, ListSink())
    tokenizer = load_tokenizer(tiny_bert)
    batch = collate(encode(tokenizer, [t for t, _ in sentiment_rows(6, seed=3)], 32), tokenizer.pad_token_id)
    assert not any(m._forward_pre_hooks for m in result.model.modules())
    result.model.eval()
    with torch.no_grad():
        expected = result.model(**batch).logits
    fresh, _ = load_model(tiny_bert, result.labels, tokenizer.pad_token_id)
    reloaded = peftcore.load_adapter(fresh, result.adapter_dir)
    reloaded.eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(**batch).logits, expected, atol=1e-5)


def test_sft_with_ba_lora_weights_is_refused_with_the_reason(tiny_shape, tmp_path):
    from tests.tiny_models import make_review_answer_file

    data = make_review_answer_file(tmp_path / "pairs.jsonl")
    spec = make_spec(
        tiny_shape("llama"),
        data,
        tmp_path / "out",
        task="sft",
        text_column="review",
        label_column="answer",
        method_params={"ba_svd": 0.1},
        params={"epochs": 1, "max_rows": 16},
    )
    with pytest.raises(TrainingError) as raised:
        run(spec, ListSink())
    assert raised.value.kind == BAD_PARAMS and "for text classification only" in raised.value.message
