"""aLoRA (LoRA's `activated`, peftcore/alora.py): the invocation sequence is the ending every training prompt
shares; the trained adapter leaves every position before it to the base model and changes the answer's; it saves
that sequence for plain peft, reloads identically and resumes exactly; what cannot hold (other tasks, DoRA,
starts that move base weights, merging, stacking, combining) is refused with the reason."""

import json

import pytest
import torch

from peftcore.alora import InvocationError, activation_problem, invocation_tokens
from peftcore.combine import combine_refusal, read_parent
from peftcore.errors import BAD_PARAMS, TrainingError
from peftcore.events import ListSink
from peftcore.merge import merge_refusal
from peftcore.methods import get_method
from peftcore.predict import load_predictor
from peftcore.sft import SftExample, encode
from peftcore.start_from import start_refusal
from peftcore.train import fit, run
from tests.tiny_models import make_review_answer_file

LORA = get_method("lora")


def _row(prompt: list[int], answer: list[int]) -> dict:
    return {"input_ids": prompt + answer, "labels": [-100] * len(prompt) + answer}


def test_the_invocation_is_the_longest_ending_every_prompt_shares():
    rows = [_row([1, 2, 7, 8, 9], [4]), _row([3, 8, 9], [5, 6]), _row([5, 5, 6, 7, 8, 9], [4])]
    assert invocation_tokens(rows) == [8, 9]
    # a row whose answer was cut away entirely says nothing about where answers start
    assert invocation_tokens([*rows, {"input_ids": [1, 2, 3], "labels": [-100] * 3}]) == [8, 9]
    assert invocation_tokens([_row(list(range(100)), [4])] * 2) == list(range(68, 100))  # at most 32 tokens


def test_prompts_without_a_shared_ending_are_refused_naming_the_fix():
    with pytest.raises(InvocationError, match="template that marks the answer"):
        invocation_tokens([_row([1, 2], [4]), _row([2, 3], [4])])


@pytest.mark.parametrize(
    "task, params, fragment",
    [
        ("text-classification", {}, "it is for SFT"),
        ("seq2seq", {}, "it is for SFT"),
        ("sft", {"use_dora": True}, "DoRA or KaSA"),
        ("sft", {"init": "pissa"}, "default or EVA start"),
    ],
)
def test_what_cannot_hold_is_refused(task, params, fragment):
    assert fragment in activation_problem(LORA, {"activated": True, **params}, task)


def test_the_refusals_stay_out_of_plain_lora_and_other_methods():
    assert activation_problem(LORA, {"activated": False}, "text-classification") is None
    assert activation_problem(get_method("ia3"), {"activated": True}, "text-classification") is None
    assert activation_problem(LORA, {"activated": True, "init": "eva"}, "sft") is None


def _spec(folder, data, out, **method_params):
    return {
        "task": "sft",
        "model_path": str(folder),
        "method": "lora",
        "method_params": {"activated": True, **method_params},
        "train_file": str(data),
        "text_column": "review",
        "label_column": "answer",
        "template": "alpaca",
        "output_dir": str(out),
        "params": {"epochs": 2, "batch_size": 8, "max_length": 64, "learning_rate": 1e-2},
    }


@pytest.fixture(scope="module")
def trained(tiny_shape, tmp_path_factory):
    out = tmp_path_factory.mktemp("alora")
    folder = tiny_shape("llama")
    data = make_review_answer_file(out / "pairs.jsonl", rows=32)
    return folder, fit(_spec(folder, data, out / "run"), ListSink())


def test_the_adapter_switches_on_at_the_answer_marker_and_reloads_in_peft(trained):
    folder, result = trained
    saved = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    # the alpaca template's answer marker, "### Response:" and its line break, as the tokenizer splits it
    marker = result.tokenizer("\n\n### Response:\n", add_special_tokens=False)["input_ids"]
    assert saved["alora_invocation_tokens"] == marker[-len(saved["alora_invocation_tokens"]) :]
    assert len(saved["alora_invocation_tokens"]) >= 3

    row = encode(SftExample(0, prompt="the film was good", response="positive"), result.tokenizer, 64, "alpaca")
    ids = torch.tensor([row["input_ids"]])
    start = len(ids[0]) - row["response_tokens"] - len(saved["alora_invocation_tokens"])
    model = result.model.eval()
    with torch.no_grad():
        adapted = model(input_ids=ids).logits
        with model.disable_adapter():
            base = model(input_ids=ids).logits
        reloaded = load_predictor(folder, result.adapter_dir).model(input_ids=ids).logits
    # before the marker the base model reads alone; from the marker on the adapter has learned something
    torch.testing.assert_close(adapted[:, :start], base[:, :start])
    assert (adapted[:, start:] - base[:, start:]).abs().max() > 1e-3
    torch.testing.assert_close(reloaded, adapted)
    assert result.done["report"]["metrics"]["eval_loss"] < result.done["report"]["baseline_metrics"]["eval_loss"]


def test_an_alora_adapter_is_not_merged_stacked_or_combined(trained):
    _, result = trained
    assert "aLoRA" in merge_refusal("lora", "sft", result.adapter_dir, {"activated": True})
    assert merge_refusal("lora", "sft", result.adapter_dir, {"activated": False}) is None
    assert "nothing can be stacked" in start_refusal("stack", "lora", "lora", {"activated": True})
    assert start_refusal("continue", "lora", "lora", {"activated": True}) is None
    parent = read_parent(result.adapter_dir)
    assert "aLoRA" in combine_refusal([parent, parent], [1.0, 1.0], "sum", None)


def test_a_classification_job_asking_for_alora_is_refused_before_training(tiny_bert, sentiment_tsv, tmp_path):
    from tests.peftcore.conftest import make_spec

    with pytest.raises(TrainingError) as raised:
        run(make_spec(tiny_bert, sentiment_tsv, tmp_path, method_params={"activated": True}), ListSink())
    assert raised.value.kind == BAD_PARAMS and "it is for SFT" in raised.value.message


def test_an_alora_run_resumes_exactly(tiny_shape, tmp_path):
    from tests.peftcore.test_checkpoints import assert_resumes_exactly, generation_spec

    data = make_review_answer_file(tmp_path / "pairs.jsonl")

    def make(out, **overrides):
        return generation_spec(
            tiny_shape("llama"),
            data,
            out,
            task="sft",
            method_params={"activated": True},
            template="alpaca",
            **overrides,
        )

    assert_resumes_exactly(make, tmp_path)
