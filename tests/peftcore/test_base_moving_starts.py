"""LoRA's starts that take B·A out of the base weights (LoRA-GA, CorDA's two modes; peftcore/lora_ga.py
convert_saved): a run saves a plain LoRA of twice the rank that loads on the untouched base model with the trained
logits. Each start's own behaviour is in test_lora_ga.py and test_corda.py."""

import json

import pytest
import torch

from peftcore import load_adapter
from peftcore.events import ListSink
from peftcore.tasks import load_tokenizer
from peftcore.tasks.text_classification import collate, encode, load_model
from peftcore.train import fit
from tests.peftcore.conftest import make_spec
from tests.tiny_models import sentiment_rows

R = 4


@pytest.mark.parametrize("init", ["lora_ga", "corda", "corda_kpm"])
def test_a_run_saves_a_plain_lora_of_twice_the_rank_that_loads_on_the_untouched_model(
    bert_without_dropout, sentiment_tsv, tmp_path, init
):
    spec = make_spec(
        bert_without_dropout,
        sentiment_tsv,
        tmp_path / "out",
        method_params={"init": init, "r": R},
        params={"epochs": 2, "batch_size": 8, "max_rows": 40, "max_length": 32},
    )
    result = fit(spec, ListSink())
    saved = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert saved["r"] == 2 * R and saved["init_lora_weights"] is True
    tokenizer = load_tokenizer(bert_without_dropout)
    inputs = collate(encode(tokenizer, [t for t, _ in sentiment_rows(6, seed=3)], 32), tokenizer.pad_token_id)
    fresh, _ = load_model(bert_without_dropout, result.labels, tokenizer.pad_token_id)
    reloaded = load_adapter(fresh, result.adapter_dir).eval()
    with torch.no_grad():
        torch.testing.assert_close(
            reloaded(**inputs).logits, result.model.eval()(**inputs).logits, atol=1e-5, rtol=1e-4
        )
