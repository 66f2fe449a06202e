"""Adaption prompts (peftcore/methods/adaption_prompt.py): the gate starts at zero so the adapted model starts as
the untouched one; only the top layers get a prompt (all of them when the model has fewer than asked); a run
learns and resumes exactly; models peft has no adaption prompt for are refused naming those it has."""

import pytest
import torch

from peftcore.errors import BAD_PARAMS, TrainingError
from peftcore.events import ListSink
from peftcore.methods import get_method
from peftcore.schema import validate_params
from peftcore.tasks import get_task, load_tokenizer
from peftcore.train import run
from tests.tiny_models import make_review_answer_file

METHOD = get_method("adaption_prompt")


def _built(folder, **params):
    torch.manual_seed(0)
    model, _ = get_task("sft").load_model(folder, [], load_tokenizer(folder))
    return METHOD.build(model, validate_params(METHOD.params, params)[0], "sft").eval()


@pytest.mark.parametrize("shape", ["llama", "gpt2"])
def test_it_starts_as_the_untouched_model_with_prompts_in_the_top_layers_only(tiny_shape, shape):
    folder = tiny_shape(shape)
    model = _built(folder, adapter_layers=1)
    ids = torch.randint(5, 60, (2, 9))
    base, _ = get_task("sft").load_model(folder, [], load_tokenizer(folder))
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, base.eval()(input_ids=ids).logits)
    prompts = [n for n, p in model.named_parameters() if p.requires_grad and "adaption_prompt" in n]
    layers = {
        n.split(".layers.")[-1].split(".")[0] if ".layers." in n else n.split(".h.")[-1].split(".")[0] for n in prompts
    }
    last = str(base.config.num_hidden_layers - 1)
    assert layers == {last}  # one layer asked: the top one


def test_more_layers_than_the_model_has_adapt_them_all(tiny_shape):
    folder = tiny_shape("llama")
    model = _built(folder, adapter_layers=200)
    assert model.peft_config["default"].adapter_layers == model.config.num_hidden_layers


def test_a_run_learns_and_resumes_exactly(tiny_shape, tmp_path):
    from tests.peftcore.test_checkpoints import assert_resumes_exactly, generation_spec

    data = make_review_answer_file(tmp_path / "pairs.jsonl")

    def make(out, **overrides):
        return generation_spec(tiny_shape("llama"), data, out, task="sft", method="adaption_prompt", **overrides)

    reference = assert_resumes_exactly(make, tmp_path)
    report = reference.done["report"]
    assert report["metrics"]["eval_loss"] < report["baseline_metrics"]["eval_loss"]


def test_a_gemma_model_is_refused_naming_the_models_it_has(tiny_shape, tmp_path):
    spec = {
        "task": "sft",
        "model_path": str(tiny_shape("gemma3")),
        "method": "adaption_prompt",
        "train_file": str(make_review_answer_file(tmp_path / "pairs.jsonl", rows=16)),
        "text_column": "review",
        "label_column": "answer",
        "output_dir": str(tmp_path / "out"),
        "params": {"epochs": 1},
    }
    with pytest.raises(TrainingError) as raised:
        run(spec, ListSink())
    assert raised.value.kind == BAD_PARAMS and "declared for: llama, mistral, gpt2" in raised.value.message
