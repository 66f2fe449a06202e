"""CPT (peftcore/methods/cpt.py): the context is the training rows' own tokens typed as peft numbers them, the
prompt starts as their embeddings, the answers' tokens never move and the rest stays within the projection bound,
the loss on the context's answers is present and falls, the saved adapter carries the context and reloads in plain
peft with identical logits, and a resumed run ends where the uninterrupted one did."""

import json

import pytest
import torch
from peft import PeftModel

from peftcore.adapters import load_adapter
from peftcore.errors import BAD_PARAMS, TrainingError
from peftcore.events import ListSink
from peftcore.methods import get_method
from peftcore.methods._common import MethodBuildError
from peftcore.methods.cpt import context, context_answer_loss
from peftcore.run_options import TrainingSample
from peftcore.schema import validate_params
from peftcore.sft import SftExample
from peftcore.tasks import get_task, load_tokenizer
from peftcore.train import fit, run
from tests.peftcore.test_checkpoints import SMALL, answer_pairs, assert_resumes_exactly, generation_spec  # noqa: F401

CPT = get_method("cpt")
N = -100  # a prompt token's label


def _row(prompt, answer):
    return {"input_ids": prompt + answer, "labels": [N] * len(prompt) + answer}


def test_the_context_holds_whole_examples_typed_as_peft_numbers_them():
    # every prompt starts with 7, 8 (the template before the input) and ends with 9 (before the answer)
    rows = [_row([1, 7, 8, 30, 31, 9], [40, 41]), _row([1, 7, 8, 32, 9], [42]), _row([1, 7, 8, 33, 34, 35, 9], [43])]
    ids, types = context(rows, 12, bos_token_id=1)  # the first two rows, without their BOS, fill it exactly
    assert ids == [7, 8, 30, 31, 9, 40, 41, 7, 8, 32, 9, 42]
    assert types == [1, 1, 2, 2, 3, 4, 4, 5, 5, 6, 7, 8]
    ids, types = context(rows, 14, bos_token_id=1, pad_token_id=99)  # the third does not fit: padding in front
    assert ids == [99, 99, 7, 8, 30, 31, 9, 40, 41, 7, 8, 32, 9, 42] and types[:3] == [0, 0, 1]
    row = [1, 7, 8, 30, 31, 9, 40, 41]  # one prompt: nothing shared, so no template types
    ids, types = context(rows[:1], 17)  # fewer tokens than the context: the rows again while one fits
    assert ids == [0, *row, *row] and types == [0, *[2] * 6, 4, 4, *[6] * 6, 8, 8]
    same = [_row([7, 8, 9], [40]), _row([7, 8, 9], [41])]  # identical prompts: the shared start and end overlap
    assert context(same, 8) == ([7, 8, 9, 40, 7, 8, 9, 41], [1, 1, 3, 4, 5, 5, 7, 8])
    with pytest.raises(MethodBuildError, match="no training row has an answer"):
        context([{"input_ids": [1, 2], "labels": [N, N]}], 4)


def test_rows_longer_than_the_context_still_leave_tokens_that_train():
    long_answer = [_row([7, 8, 30, 9], list(range(100, 190)))]
    ids, types = context(long_answer, 16)  # the answer is cut to fit after the whole prompt
    assert ids == [7, 8, 30, 9, *range(100, 112)] and types == [2] * 4 + [4] * 12
    both_long = [_row(list(range(200, 260)), list(range(100, 190)))]
    ids, types = context(both_long, 16)  # the answer's first half, the prompt's end before it
    assert ids == [*range(252, 260), *range(100, 108)] and types == [2] * 8 + [4] * 8


def _built(folder, **params):
    runner = get_task("sft").runner(tokenizer=load_tokenizer(folder), options={"template": "plain"}, max_length=32)
    words = ("red", "green", "blue", "black", "white", "pink")
    features = runner.encode(
        [SftExample(i, prompt=f"colour {i}: {w}", response=words[i - 1]) for i, w in enumerate(words)]
    )
    torch.manual_seed(0)
    model, new_modules = get_task("sft").load_model(folder, [], runner.tokenizer)
    clean = validate_params(CPT.params, params)[0]
    model = CPT.build(model, clean, "sft", new_modules=new_modules)
    CPT.data_init(model, clean, TrainingSample(runner, features, 8, torch.device("cpu"), lambda: None, False))
    return model, runner, features


def test_answers_stay_put_and_inputs_and_templates_move_within_their_own_bounds(tiny_shape):
    model, runner, features = _built(
        tiny_shape("llama"), num_virtual_tokens=24, opt_projection_epsilon=0.05, opt_projection_format_epsilon=0.2
    )
    config, encoder = model.peft_config["default"], model.prompt_encoder["default"]
    words = model.get_base_model().get_input_embeddings().weight
    torch.testing.assert_close(encoder.embedding.weight, words[config.cpt_token_ids].float())
    kinds = torch.tensor(config.cpt_tokens_type_mask) % 4
    # the prompts share their start ("colour"), not their end: templates before the input, inputs, answers
    assert len(config.cpt_token_ids) == 24 and set(kinds.tolist()) == {0, 1, 2}
    batch = runner.collate(features)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    context_losses = []
    for _ in range(10):
        model.train()
        extra = context_answer_loss(model)
        loss = runner.loss(model, batch) + extra
        context_losses.append(float(extra))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert context_losses[-1] < context_losses[0]
    with torch.no_grad():  # what the prompt the rows read adds to the context's own embeddings
        moved = (model.get_prompt(1)[0] - encoder.embedding.weight).norm(dim=1)
    scale = (words.shape[1] / 2048) ** 0.5
    answers, inputs, templates = moved[kinds == 0], moved[kinds == 2], moved[kinds == 1]
    assert answers.max() == 0
    assert 0 < inputs.max() <= 0.05 * scale * (1 + 1e-5)
    assert 0.05 * scale < templates.max() <= 0.2 * scale * (1 + 1e-5)


def test_a_run_saves_the_context_and_plain_peft_reloads_it(tiny_shape, answer_pairs, tmp_path):  # noqa: F811
    folder = tiny_shape("gpt2")
    spec = generation_spec(
        folder, answer_pairs, tmp_path / "out", task="sft", method="cpt", method_params={"num_virtual_tokens": 16}
    )
    result = fit(spec, ListSink())
    saved = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert saved["peft_type"] == "CPT" and saved["cpt_token_ids"] == result.model.peft_config["default"].cpt_token_ids
    assert saved["cpt_tokens_type_mask"][-1] % 4 == 0  # it ends on an answer
    fresh, _ = get_task("sft").load_model(folder, [], load_tokenizer(folder))
    plain = PeftModel.from_pretrained(fresh, str(result.adapter_dir)).eval()
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        torch.testing.assert_close(plain(input_ids=ids).logits, result.model.eval()(input_ids=ids).logits)
    fresh, _ = get_task("sft").load_model(folder, [], load_tokenizer(folder))
    continued = load_adapter(fresh, result.adapter_dir, trainable=True)  # a job that continues it
    trainable = [p for n, p in continued.named_parameters() if p.requires_grad]
    assert [n for n, p in continued.named_parameters() if p.requires_grad] == [
        "prompt_encoder.default.delta_embedding.weight"
    ]
    with torch.no_grad():
        before = continued(input_ids=ids).logits
    torch.testing.assert_close(before, plain(input_ids=ids).logits)  # it continues from the trained prompt
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    continued(input_ids=ids).logits.logsumexp(-1).mean().backward()
    optimizer.step()
    with torch.no_grad():  # the step reached the prompt the rows read
        assert not torch.allclose(continued(input_ids=ids).logits, before)


def test_a_context_that_leaves_the_rows_too_few_positions_is_refused(tiny_shape, answer_pairs, tmp_path):  # noqa: F811
    spec = generation_spec(
        tiny_shape("gpt2"), answer_pairs, tmp_path, task="sft", method="cpt", method_params={"num_virtual_tokens": 120}
    )
    with pytest.raises(TrainingError) as raised:
        run(spec, ListSink())
    assert raised.value.kind == BAD_PARAMS
    assert raised.value.message == (
        "CPT: 120 virtual tokens leave 8 of the model's 128 positions for the rows; use at most 112 virtual tokens"
    )


def test_cpt_resumes_exactly(tiny_shape, answer_pairs, tmp_path):  # noqa: F811
    def make(out, **overrides):
        return generation_spec(
            tiny_shape("llama"),
            answer_pairs,
            out,
            task="sft",
            method="cpt",
            method_params={"num_virtual_tokens": 16},
            **overrides,
        )

    assert_resumes_exactly(make, tmp_path)


def test_cpt_stacked_on_a_lora_adapter_reads_its_context_from_the_rows(tiny_shape, answer_pairs, tmp_path):  # noqa: F811
    folder = tiny_shape("llama")
    below = fit(generation_spec(folder, answer_pairs, tmp_path / "lora", task="sft"), ListSink())
    stacked = fit(
        generation_spec(
            folder,
            answer_pairs,
            tmp_path / "cpt",
            task="sft",
            method="cpt",
            method_params={"num_virtual_tokens": 16},
            start_from={"adapter_dir": str(below.adapter_dir), "mode": "stack"},
        ),
        ListSink(),
    )
    config = stacked.model.peft_config["default"]
    assert len(set(config.cpt_token_ids)) > 2 and any(t % 4 == 0 and t > 0 for t in config.cpt_tokens_type_mask)


def test_the_form_and_the_worker_ask_the_same_question_of_the_context_length():
    from peftcore.methods import virtual_tokens_problem

    assert virtual_tokens_problem(CPT, {"num_virtual_tokens": 112}, 128) is None
    assert virtual_tokens_problem(CPT, {"num_virtual_tokens": 64}, None) is None  # no limit known
    assert virtual_tokens_problem(get_method("lora"), {}, 8) is None  # not a prompt method
    assert "leave 0 of the model's 128 positions" in virtual_tokens_problem(CPT, {"num_virtual_tokens": 1024}, 128)
