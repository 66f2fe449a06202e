"""Multitask prompt tuning (peftcore/methods/multitask_prompt_tuning.py): the prompt starts as plain prompt
tuning's (the task matrix all ones), both the shared prompt and the task matrix train, and the saved adapter
reloads in plain peft given task 0 with the logits the studio's reload gives without one (the method matrix and
the resume matrix have it too)."""

import torch
from peft import PeftModel

from peftcore import load_adapter
from peftcore.counting import count_trainable
from peftcore.events import ListSink
from peftcore.tasks import load_tokenizer
from peftcore.tasks.text_classification import collate, encode, load_model
from peftcore.train import fit
from tests.peftcore.conftest import build_classifier, make_spec
from tests.tiny_models import sentiment_rows


def _built(folder, **params):
    return build_classifier(folder, "multitask_prompt_tuning", **params)


def test_the_prompt_starts_as_the_shared_prompt_and_the_task_matrix_is_counted(tiny_bert):
    model, _ = _built(tiny_bert, num_virtual_tokens=6, num_ranks=2)
    encoder = model.prompt_encoder["default"]
    with torch.no_grad():
        prompt = model.get_prompt(batch_size=3)  # no task id given: task 0
    assert prompt.shape == (3, 6, 32)
    torch.testing.assert_close(prompt[1], encoder.embedding.weight)
    assert {n.rsplit(".", 1)[-1] for n, p in model.named_parameters() if p.requires_grad and "prompt" in n} >= {
        "prefix_task_cols",
        "prefix_task_rows",
    }
    counted = count_trainable(
        tiny_bert, "multitask_prompt_tuning", {"num_virtual_tokens": 6, "num_ranks": 2}, "text-classification"
    )
    assert counted["trainable"] - counted["head"] == 6 * 32 + 6 * 2 + 2 * 32


def test_a_run_trains_both_parts_and_plain_peft_reloads_it_with_task_zero(tiny_bert, sentiment_tsv, tmp_path):
    spec = make_spec(
        tiny_bert,
        sentiment_tsv,
        tmp_path / "out",
        method="multitask_prompt_tuning",
        method_params={"num_virtual_tokens": 4, "num_ranks": 2},
        params={"epochs": 2, "batch_size": 8, "max_rows": 40, "max_length": 32},
    )
    result = fit(spec, ListSink())
    encoder = result.model.prompt_encoder["default"]
    task_matrix = encoder.prefix_task_cols[0] @ encoder.prefix_task_rows[0]
    assert not torch.allclose(task_matrix, torch.ones_like(task_matrix))  # the task matrix moved off its start
    assert torch.linalg.matrix_rank(task_matrix.detach()) == 2  # both ranks learned parts of their own
    tokenizer = load_tokenizer(tiny_bert)
    batch = collate(encode(tokenizer, [t for t, _ in sentiment_rows(5, seed=3)], 32), tokenizer.pad_token_id)
    fresh, _ = load_model(tiny_bert, result.labels, tokenizer.pad_token_id)
    studio = load_adapter(fresh, result.adapter_dir).eval()
    fresh, _ = load_model(tiny_bert, result.labels, tokenizer.pad_token_id)
    plain = PeftModel.from_pretrained(fresh, str(result.adapter_dir)).eval()
    with torch.no_grad():
        expected = studio(**batch).logits
        torch.testing.assert_close(plain(**batch, task_ids=torch.zeros(5, dtype=torch.long)).logits, expected)
        torch.testing.assert_close(result.model.eval()(**batch).logits, expected, atol=1e-5, rtol=1e-4)
