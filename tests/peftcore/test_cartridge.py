"""Cartridges (peftcore/methods/cartridge.py): the cartridge starts as the base model's own key-value cache of the
training rows' first tokens, so the adapted model first reads a prompt exactly as the base model reads it after
those tokens; training leaves the frozen first position alone; a run reloads identically and resumes exactly."""

import pytest
import torch

from peftcore.events import ListSink
from peftcore.methods import get_method
from peftcore.methods._common import MethodBuildError
from peftcore.methods.cartridge import corpus_start
from peftcore.run_options import TrainingSample
from peftcore.schema import validate_params
from peftcore.sft import SftExample
from peftcore.tasks import get_task, load_tokenizer
from peftcore.train import fit
from tests.tiny_models import make_review_answer_file

CARTRIDGE = get_method("cartridge")


def _started(folder, **params):
    runner = get_task("sft").runner(tokenizer=load_tokenizer(folder), options={"template": "alpaca"}, max_length=48)
    features = runner.encode([SftExample(i, prompt=f"the film was {w}", response=w) for i, w in enumerate("abcdef")])
    torch.manual_seed(0)
    model, _ = get_task("sft").load_model(folder, [], runner.tokenizer)
    clean = validate_params(CARTRIDGE.params, params)[0]
    model = CARTRIDGE.build(model, clean, "sft")
    CARTRIDGE.data_init(model, clean, TrainingSample(runner, features, 8, torch.device("cpu"), lambda: None, False))
    return model.eval(), features


@pytest.mark.parametrize("shape", ["llama", "gemma3"])
def test_the_cartridge_starts_as_the_base_models_cache_of_the_first_tokens(tiny_shape, shape):
    model, features = _started(tiny_shape(shape), num_virtual_tokens=12)
    start = corpus_start(features, 12)
    prompt = torch.tensor([features[0]["input_ids"][:6]])
    with torch.no_grad():
        adapted = model(input_ids=prompt, attention_mask=torch.ones_like(prompt)).logits
        with model.disable_adapter():
            whole = torch.tensor([start + prompt[0].tolist()])
            base = model(input_ids=whole, attention_mask=torch.ones_like(whole)).logits[:, 12:]
    torch.testing.assert_close(adapted, base, rtol=1e-4, atol=1e-4)


def test_the_first_tokens_run_across_rows_and_too_few_are_refused():
    rows = [{"input_ids": [1, 2, 3]}, {"input_ids": [4, 5]}, {"input_ids": [6, 7, 8]}]
    assert corpus_start(rows, 4) == [1, 2, 3, 4]
    with pytest.raises(MethodBuildError, match="hold 8 tokens, fewer than the cartridge's 9"):
        corpus_start(rows, 9)


def test_frozen_positions_must_leave_some_to_train(tiny_shape):
    with pytest.raises(MethodBuildError, match="4 frozen positions leave none of the 4 to train"):
        _started(tiny_shape("llama"), num_virtual_tokens=4, num_frozen_tokens=4)


def test_a_run_trains_all_but_the_frozen_position_and_reloads(tiny_shape, tmp_path):
    from peftcore.predict import load_predictor

    folder = tiny_shape("llama")
    data = make_review_answer_file(tmp_path / "pairs.jsonl", rows=32)
    spec = {
        "task": "sft",
        "model_path": str(folder),
        "method": "cartridge",
        "method_params": {"num_virtual_tokens": 16},
        "train_file": str(data),
        "text_column": "review",
        "label_column": "answer",
        "template": "alpaca",
        "output_dir": str(tmp_path / "out"),
        "params": {"epochs": 2, "batch_size": 8, "max_length": 48, "learning_rate": 1e-2},
    }
    result = fit(spec, ListSink())
    assert result.done["report"]["metrics"]["eval_loss"] < result.done["report"]["baseline_metrics"]["eval_loss"]
    # every SFT row starts with the begin-of-sequence token, so any rows give the frozen first position's start
    started, _ = _started(folder, num_virtual_tokens=16)
    before = started.prompt_encoder["default"]
    after = result.model.prompt_encoder["default"]
    frozen, trained = before.frozen_embedding, after.frozen_embedding
    torch.testing.assert_close(trained, frozen)  # the attention sink stays as it started
    assert (after.trainable_embedding - before.trainable_embedding).abs().max() > 1e-4
    ids = result.tokenizer("the film was good", return_tensors="pt")
    result.model.eval()
    with torch.no_grad():
        reloaded = load_predictor(folder, result.adapter_dir).model(**ids).logits
        torch.testing.assert_close(reloaded, result.model(**ids).logits)


def test_a_cartridge_run_resumes_exactly(tiny_shape, tmp_path):
    from tests.peftcore.test_checkpoints import assert_resumes_exactly, generation_spec

    data = make_review_answer_file(tmp_path / "pairs.jsonl")

    def make(out, **overrides):
        return generation_spec(tiny_shape("llama"), data, out, task="sft", method="cartridge", **overrides)

    assert_resumes_exactly(make, tmp_path)
