"""What SFT saves without changing what it learns: the output layer only from the first answer token on (same
loss, same gradients), gradient checkpointing (same gradients), and Gemma's turn format picked for a vocabulary
made for it."""

import random

import pytest
import torch

from peftcore.loop import length_grouped
from peftcore.methods import get_method
from peftcore.schema import validate_params
from peftcore.sft import SftExample, auto_template, render
from peftcore.tasks import get_task, load_tokenizer
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

    # The output layer sees only the positions that predict an answer token, row by row.
    logits, targets = runner._answer_logits(model, batch, keep)
    answers = int(batch["labels"][:, 1:].ne(-100).sum())
    assert targets is not None and logits.shape[0] == len(targets) == answers
    assert answers < len(EXAMPLES) * keep  # fewer than the rectangle from the first answer token

    kept, kept_grads = loss_and_grads(True)
    full, full_grads = loss_and_grads(False)
    # The reference is the model's own mean loss (transformers' shift and ignore_index), not token_loss itself.
    reference = model(**batch).loss.item() * answers
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
    assert model.get_base_model().is_activation_checkpointing
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


def test_batches_of_similar_length_cover_every_row_once_with_less_padding():
    lengths = [random.Random(i).randint(5, 300) for i in range(203)]
    features = [{"input_ids": [0] * n} for n in lengths]

    def padding(order):
        batches = [order[i : i + 8] for i in range(0, len(order), 8)]
        return sum(max(lengths[r] for r in b) * len(b) - sum(lengths[r] for r in b) for b in batches)

    shuffled = torch.randperm(203, generator=torch.Generator().manual_seed(0)).tolist()
    grouped = length_grouped(shuffled, features, 8, torch.Generator().manual_seed(1))
    assert sorted(grouped) == list(range(203))
    assert padding(grouped) < padding(shuffled) / 3
    # one window (203 rows < 50 batches): the short batch (203 = 25 x 8 + 3) holds its shortest rows, and stays last
    assert sorted(lengths[r] for r in grouped[-3:]) == sorted(lengths)[:3]
    again = length_grouped(shuffled, features, 8, torch.Generator().manual_seed(1))
    other = length_grouped(shuffled, features, 8, torch.Generator().manual_seed(2))
    assert grouped == again and grouped != other  # the batches' order is the generator's draw
