"""Poly (peftcore/methods/poly.py): the skills start as a zero update, the router trains and mixes them at random
while training but not in evaluation, Multi-Head Routing splits the layers when its heads divide them and is
refused by name when they do not, and the saved adapter reloads in plain peft given task 0 with the logits the
studio's reload gives without one (the method matrix and the resume matrix have it too)."""

import pytest
import torch
from peft import PeftModel

from peftcore import load_adapter
from peftcore.counting import count_trainable
from peftcore.events import ListSink
from peftcore.methods._common import MethodBuildError
from peftcore.tasks import load_tokenizer
from peftcore.tasks.text_classification import collate, encode, load_model
from peftcore.train import fit
from tests.peftcore.conftest import build_classifier, make_spec
from tests.tiny_models import sentiment_rows


def _built(folder, **params):
    return build_classifier(folder, "poly", **params)


def _batch(tokenizer, n, seed):
    return collate(encode(tokenizer, [t for t, _ in sentiment_rows(n, seed=seed)], 32), tokenizer.pad_token_id)


def test_heads_split_each_skill_and_the_count_follows(tiny_bert):
    model, tokenizer = _built(tiny_bert, r=2, n_skills=3, n_splits=4)
    query = model.base_model.model.bert.encoder.layer[0].attention.self.query
    assert query.poly_lora_A["default"].shape == (4, 3, 32 // 4, 2)
    assert query.poly_router["default"].module_logits.shape == (1, 4 * 3)
    counted = count_trainable(tiny_bert, "poly", {"r": 2, "n_skills": 3, "n_splits": 4}, "text-classification")
    assert counted["trainable"] == sum(p.numel() for p in model.parameters() if p.requires_grad)
    batch = _batch(tokenizer, 4, seed=2)
    model.eval()
    with torch.no_grad(), model.disable_adapter():
        base = model(**batch).logits
    with torch.no_grad():  # B starts at zero: the untrained skills change nothing
        torch.testing.assert_close(model(**batch).logits, base)


def test_heads_that_do_not_divide_the_layers_are_refused_by_name(tiny_bert):
    with pytest.raises(MethodBuildError, match="Poly: 3 heads do not divide"):
        _built(tiny_bert, n_splits=3)


def test_a_run_trains_the_router_and_plain_peft_reloads_it_with_task_zero(tiny_bert, sentiment_tsv, tmp_path):
    spec = make_spec(
        tiny_bert,
        sentiment_tsv,
        tmp_path / "out",
        method="poly",
        params={"epochs": 2, "batch_size": 8, "max_rows": 40, "max_length": 32},
    )
    result = fit(spec, ListSink())
    query = result.model.base_model.model.bert.encoder.layer[0].attention.self.query
    assert query.poly_router["default"].module_logits.abs().max() > 1e-3  # moved off its start, U(-1e-3, 1e-3)
    tokenizer = load_tokenizer(tiny_bert)
    batch = _batch(tokenizer, 5, seed=3)
    result.model.train()  # training draws the routing at random: two draws differ
    assert not torch.allclose(result.model(**batch).logits, result.model(**batch).logits)
    fresh, _ = load_model(tiny_bert, result.labels, tokenizer.pad_token_id)
    studio = load_adapter(fresh, result.adapter_dir).eval()
    fresh, _ = load_model(tiny_bert, result.labels, tokenizer.pad_token_id)
    plain = PeftModel.from_pretrained(fresh, str(result.adapter_dir)).eval()
    with torch.no_grad():
        expected = studio(**batch).logits
        torch.testing.assert_close(plain(**batch, task_ids=torch.zeros(5, dtype=torch.long)).logits, expected)
        torch.testing.assert_close(result.model.eval()(**batch).logits, expected, atol=1e-5, rtol=1e-4)
