"""CPT (peftcore/methods/cpt.py): the context is the training rows' own tokens typed as peft numbers them, the
prompt starts as their embeddings, the answers' tokens never move and the rest stays within the projection bound,
the loss on the context's answers is present and falls, the saved adapter carries the context and reloads in plain
peft with identical logits, and a resumed run ends where the uninterrupted one did."""

import json

import pytest
import torch
from peft import PeftModel

from peftcore.adapters import load_adapter
from peftcore.events import ListSink
from peftcore.methods import get_method
from peftcore.methods._common import MethodBuildError
from peftcore.methods.cpt import context, context_answer_loss
from peftcore.run_options import TrainingSample
from peftcore.schema import validate_params
from peftcore.sft import SftExample
from peftcore.tasks import get_task, load_tokenizer
from tests.peftcore.test_checkpoints import SMALL, answer_pairs, assert_resumes_exactly, generation_spec  # noqa: F401

CPT = get_method("cpt")
N = -100  # a prompt token's label


def _row(prompt, answer):
    return {"input_ids": prompt + answer, "labels": [N] * len(prompt) + answer}


def test_the_context_types_templates_inputs_and_answers_and_ends_on_an_answer():
    # every prompt starts with 7, 8 (the template before the input) and ends with 9 (before the answer)
    rows = [_row([1, 7, 8, 30, 31, 9], [40, 41]), _row([1, 7, 8, 32, 9], [42]), _row([1, 7, 8, 33, 34, 35, 9], [43])]
    ids, types = context(rows, 12, bos_token_id=1)
    # the rows read one after another without their BOS until there are 12 tokens
    assert ids == [7, 8, 30, 31, 9, 40, 41, 7, 8, 32, 9, 42]
    assert types == [1, 1, 2, 2, 3, 4, 4, 5, 5, 6, 7, 8]
    ids, types = context(rows, 14, bos_token_id=1)  # the last 14 of 19: the window starts in the first answer
    assert ids == [40, 41, 7, 8, 32, 9, 42, 7, 8, 33, 34, 35, 9, 43]
    assert types == [4, 4, 5, 5, 6, 7, 8, 9, 9, 10, 10, 10, 11, 12]
    ids, types = context(rows[:1], 17)  # fewer tokens than the context: the rows again, from the first
    row = [1, 7, 8, 30, 31, 9, 40, 41]  # one prompt: nothing shared, so no template types
    assert ids == [41, *row, *row] and types == [4, *[6] * 6, 8, 8, *[10] * 6, 12, 12]
    with pytest.raises(MethodBuildError, match="no training row has an answer"):
        context([{"input_ids": [1, 2], "labels": [N, N]}], 4)


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


def test_answers_stay_put_inputs_move_within_the_bound_and_the_context_loss_falls(tiny_shape):
    model, runner, features = _built(tiny_shape("llama"), num_virtual_tokens=24)
    config, encoder = model.peft_config["default"], model.prompt_encoder["default"]
    words = model.get_base_model().get_input_embeddings().weight
    torch.testing.assert_close(encoder.embedding.weight, words[config.cpt_token_ids].float())
    # the prompts share their start ("colour"), not their end: templates before the input, inputs, answers
    assert len(config.cpt_token_ids) == 24 and {t % 4 for t in config.cpt_tokens_type_mask} == {0, 1, 2}
    answers = torch.tensor([t % 4 == 0 for t in config.cpt_tokens_type_mask])
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
    delta = encoder.get_projection()  # what the prompt adds, as the forward applies it
    assert delta[answers].abs().max() == 0 and delta[~answers].abs().max() > 0
    bound = 0.1 * (words.shape[1] / 2048) ** 0.5
    assert delta.norm(dim=1).max() <= bound * (1 + 1e-5)


def test_a_run_saves_the_context_and_plain_peft_reloads_it(tiny_shape, answer_pairs, tmp_path):  # noqa: F811
    from peftcore.train import fit

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
    assert [n for n, p in continued.named_parameters() if p.requires_grad] == [
        "prompt_encoder.default.delta_embedding.weight"
    ]


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
