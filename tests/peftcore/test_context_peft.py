"""Context-PEFT (peftcore/methods/context_lora.py, peftcore/token_groups.py) on a tiny Llama: the prompt's tokens go
through the prompt adapter only and the answer's through the answer adapter only, generation reads the prompt as
prompt and writes as answer, and a run trains both adapters and reloads with identical logits."""

import pytest
import torch

from peftcore import load_adapter
from peftcore.events import ListSink
from peftcore.methods import get_method
from peftcore.schema import validate_params
from peftcore.sft import SftExample
from peftcore.tasks import get_task, load_tokenizer
from peftcore.token_groups import ANSWER, PROMPT, labels_in_flight
from peftcore.train import fit
from tests.tiny_models import make_review_answer_file


def _setup(tiny_shape):
    folder = tiny_shape("llama")
    runner = get_task("sft").runner(tokenizer=load_tokenizer(folder), options={"template": "plain"}, max_length=32)
    examples = [SftExample(i, prompt=f"the film was {w}", response=w) for i, w in enumerate(("good", "bad", "dull"))]
    batch = runner.collate(runner.encode(examples))
    torch.manual_seed(0)
    model, _ = get_task("sft").load_model(folder, [], runner.tokenizer)
    method = get_method("context_lora")
    model = method.build(model, validate_params(method.params, {})[0], "sft").eval()
    return model, batch


def _only(model, adapter: str) -> None:
    """A trained-looking `adapter`, the other one zero (as at the start)."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if ".lora_B." in name:
                parameter.normal_(0, 1.0) if f".lora_B.{adapter}." in name else parameter.zero_()


@pytest.mark.parametrize("adapter", [ANSWER, PROMPT])
def test_each_token_goes_through_its_groups_adapter_only(tiny_shape, adapter):
    model, batch = _setup(tiny_shape)
    _only(model, adapter)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        with labels_in_flight(batch["labels"]):
            routed = model(**inputs).logits
        with model.disable_adapter():
            base = model(**inputs).logits
    answer = batch["labels"].ne(-100)
    real = batch["attention_mask"].bool()
    differs = (routed - base).abs().amax(-1) > 1e-4
    # causal attention: a prompt token sees only prompt tokens, so with the answer adapter alone it is unchanged
    # and with the prompt adapter alone it changes; an answer token changes either way (it sees the prompt)
    prompt_tokens = ~answer & real
    if adapter == ANSWER:
        assert not differs[prompt_tokens].any() and differs[answer].all()
    else:
        assert differs[prompt_tokens].all()


def test_generation_reads_the_prompt_as_prompt_and_writes_as_answer(tiny_shape):
    model, batch = _setup(tiny_shape)
    router, seen = model.peftcore_router, []
    original = router._route

    def spy(module, args, kwargs):
        original(module, args, kwargs)
        seen.append(router.answer.squeeze(-1).clone())

    router.handles[0].remove()
    model.base_model.model.register_forward_pre_hook(spy, with_kwargs=True)
    prompt = batch["input_ids"][:1, :4]
    with torch.no_grad():
        model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=3, do_sample=False)
    assert len(seen) == 3
    assert seen[0].shape == (1, 4) and not seen[0].any()  # the prompt pass
    assert all(step.shape == (1, 1) and step.all() for step in seen[1:])  # each token written


def test_a_run_trains_both_adapters_and_reloads_with_identical_logits(tiny_shape, tmp_path):
    folder = tiny_shape("llama")
    data = make_review_answer_file(tmp_path / "pairs.jsonl", rows=32)
    spec = {
        "task": "sft",
        "model_path": str(folder),
        "method": "context_lora",
        "train_file": str(data),
        "text_column": "review",
        "label_column": "answer",
        "template": "plain",
        "output_dir": str(tmp_path / "out"),
        "params": {"epochs": 2, "batch_size": 8, "max_length": 32, "learning_rate": 1e-2},
    }
    result = fit(spec, ListSink())
    moved = {
        adapter: max(
            float(p.detach().abs().max()) for n, p in result.model.named_parameters() if f".lora_B.{adapter}." in n
        )
        for adapter in (ANSWER, PROMPT)
    }
    assert moved[ANSWER] > 0 and moved[PROMPT] > 0  # both groups' adapters learned
    assert result.done["report"]["metrics"]["eval_loss"] < result.done["report"]["baseline_metrics"]["eval_loss"]

    runner = get_task("sft").runner(tokenizer=result.tokenizer, options={"template": "plain"}, max_length=32)
    batch = runner.collate(runner.encode([SftExample(0, prompt="the film was good", response="positive")]))
    fresh, _ = get_task("sft").load_model(folder, [], result.tokenizer)
    reloaded = load_adapter(fresh, result.adapter_dir).eval()
    result.model.eval()
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad(), labels_in_flight(batch["labels"]):
        torch.testing.assert_close(reloaded(**inputs).logits, result.model(**inputs).logits)
    assert "peftcore.load_adapter(model, folder)" in (result.adapter_dir / "README.md").read_text()


def test_a_context_peft_run_resumes_exactly(tiny_shape, tmp_path):
    from tests.peftcore.test_checkpoints import assert_resumes_exactly, generation_spec

    data = make_review_answer_file(tmp_path / "pairs.jsonl")

    def make(out, **overrides):
        return generation_spec(tiny_shape("llama"), data, out, task="sft", method="context_lora", **overrides)

    assert_resumes_exactly(make, tmp_path)
