"""ShadowPEFT (peftcore/methods/shadow.py): the shadow network's correction starts at zero, so the adapted model
starts as the base model; only shadow weights train; a run learns on Llama and Gemma 3, reloads identically and
resumes exactly."""

import pytest
import torch

from peftcore.methods import get_method
from peftcore.predict import load_predictor
from peftcore.schema import validate_params
from peftcore.tasks import get_task, load_tokenizer
from tests.tiny_models import make_review_answer_file

SHADOW = get_method("shadow")


@pytest.mark.parametrize("shape", ["llama", "gemma3"])
def test_it_starts_as_the_base_model_and_trains_only_the_shadow(tiny_shape, shape):
    folder = tiny_shape(shape)
    torch.manual_seed(0)
    model, _ = get_task("sft").load_model(folder, [], load_tokenizer(folder))
    model = SHADOW.build(model, validate_params(SHADOW.params, {})[0], "sft").eval()
    ids = torch.randint(5, 60, (2, 9))
    with torch.no_grad():
        adapted = model(input_ids=ids).logits
        with model.disable_adapter():
            plain = model(input_ids=ids).logits
    torch.testing.assert_close(adapted, plain)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("shadow" in n for n in trainable)


def test_a_run_learns_reloads_and_resumes_exactly(tiny_shape, tmp_path):
    from tests.peftcore.test_checkpoints import assert_resumes_exactly, generation_spec

    folder = tiny_shape("gemma3")
    data = make_review_answer_file(tmp_path / "pairs.jsonl")

    def make(out, **overrides):
        return generation_spec(folder, data, out, task="sft", method="shadow", **overrides)

    reference = assert_resumes_exactly(make, tmp_path)
    report = reference.done["report"]
    assert report["metrics"]["eval_loss"] < report["baseline_metrics"]["eval_loss"]
    ids = reference.tokenizer("the film was good", return_tensors="pt")
    reference.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            load_predictor(folder, reference.adapter_dir).model(**ids).logits, reference.model(**ids).logits
        )


def test_the_shadow_cannot_be_merged():
    from peftcore.merge import merge_refusal

    assert "cannot be folded" in merge_refusal("shadow", "sft")
