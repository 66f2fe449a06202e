"""What SFT saves without changing what it learns: the output layer only from the first answer token on (same
loss, same gradients), gradient checkpointing (same gradients), and Gemma's turn format picked for a vocabulary
made for it."""

import pytest
import torch

from peftcore.methods import get_method
from peftcore.schema import validate_params
from peftcore.sft import SftExample, auto_template, render
from peftcore.tasks import get_task, load_tokenizer
from peftcore.tasks._generation import token_loss
from peftcore.train import _checkpoint_activations

EXAMPLES = [
    SftExample(1, prompt="a long question about the film and its plot, asked at length", response="short"),
    SftExample(2, prompt="why", response="because the ending was far too long and very dull"),
    SftExample(3, prompt="say the review again in other words please", response="it was lovely"),
]


def _runner_and_model(folder, *, answer_only=True):
    task = get_task("sft")
    tokenizer = load_tokenizer(folder)
    model, new_modules = task.load_model(folder, [], tokenizer)
    method = get_method("lora")
    torch.manual_seed(0)
    model = method.build(model, validate_params(method.params, {})[0], "sft", new_modules=new_modules, total_steps=4)
    runner = task.runner(
        tokenizer=tokenizer, labels=[], options={}, max_length=64, batch_size=8, device=None, position_limit=128
    )
    runner.answer_logits_only = answer_only
    return runner, model


@pytest.mark.parametrize("shape", ["llama", "gemma3"])
def test_logits_from_the_first_answer_token_give_the_same_loss_and_gradients(tiny_shape, shape):
    runner, model = _runner_and_model(tiny_shape(shape))
    model.eval()  # no dropout: the passes must be comparable
    batch = runner.collate(runner.encode(EXAMPLES))
    keep = runner.logits_to_keep(model, batch["labels"])
    first_answer = int(batch["labels"].ne(-100).any(dim=0).nonzero()[0])
    assert keep == batch["labels"].shape[1] - (first_answer - 1) < batch["labels"].shape[1]

    def loss_and_grads(answer_only):
        runner.answer_logits_only = answer_only
        model.zero_grad()
        loss = runner.summed_loss(model, batch)
        loss.backward()
        return loss.item(), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    kept, kept_grads = loss_and_grads(True)
    full, full_grads = loss_and_grads(False)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    reference = token_loss(model(**inputs).logits, batch["labels"], causal=True)[0].item()
    assert kept == pytest.approx(full, rel=1e-5) and full == pytest.approx(reference, rel=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(kept_grads, full_grads))
    assert runner.eval_loss(model, runner.encode(EXAMPLES)) == pytest.approx(full / runner.loss_units(batch), rel=1e-5)


def test_gradient_checkpointing_keeps_the_gradients(tiny_shape):
    runner, model = _runner_and_model(tiny_shape("gemma3"))
    batch = runner.collate(runner.encode(EXAMPLES))
    model.eval()  # no dropout: the two passes must be comparable

    def grads():
        model.zero_grad()
        runner.summed_loss(model, batch).backward()
        return [p.grad.clone() for p in model.parameters() if p.requires_grad]

    plain = grads()
    _checkpoint_activations(model)
    assert model.get_base_model().is_gradient_checkpointing
    checkpointed = grads()
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(plain, checkpointed))


def test_a_gemma_vocabulary_gets_gemmas_turn_format(tiny_shape):
    gemma = load_tokenizer(tiny_shape("gemma3"))
    assert gemma.chat_template is None and auto_template(gemma) == "gemma"
    prompt, answer = render(SftExample(1, prompt="hi", response="hello"), gemma)
    assert (prompt, answer) == ("<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n", "hello")
    # the markers are single tokens, as in Gemma's own vocabulary
    assert len(gemma("<start_of_turn>", add_special_tokens=False)["input_ids"]) == 1
    # a vocabulary without them keeps Alpaca
    assert auto_template(load_tokenizer(tiny_shape("llama"))) == "alpaca"
