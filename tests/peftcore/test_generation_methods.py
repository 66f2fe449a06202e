"""Every registered method on the generation tasks: SFT on a tiny GPT-2 and Llama, seq2seq on a tiny T5. Where a
method supports the shape, a few steps at its recommended learning rate lower the loss on a batch, exactly the
meta-device count of parameters trains, and the saved adapter reloads with identical logits; where it does not,
the job is refused with the method's reason before anything trains."""

import pytest
import torch

from peftcore.counting import count_trainable
from peftcore.errors import BAD_PARAMS, TrainingError
from peftcore.events import ListSink
from peftcore.methods import all_methods, get_method
from peftcore.predict import load_predictor
from peftcore.run_options import TrainingSample
from peftcore.schema import validate_params
from peftcore.sft import SftExample
from peftcore.tasks import get_task, load_tokenizer
from peftcore.train import fit, run
from tests.tiny_models import COLOURS, make_colour_pairs_file

SHAPE_TASKS = {"gpt2": "sft", "llama": "sft", "t5": "seq2seq"}
CASES = [(shape, m.name) for shape in SHAPE_TASKS for m in all_methods()]
STEPS = 8
WORDS = COLOURS


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    return make_colour_pairs_file(tmp_path_factory.mktemp("data") / "pairs.jsonl")


def _task(folder, task):
    return get_task(task).runner(tokenizer=load_tokenizer(folder), options={"template": "plain"}, max_length=32)


@pytest.mark.parametrize("shape, name", CASES, ids=[f"{s}-{n}" for s, n in CASES])
def test_every_method_trains_and_reloads_for_generation_or_is_refused(tiny_shape, pairs_file, tmp_path, shape, name):
    folder, method, task = tiny_shape(shape), get_method(name), SHAPE_TASKS[shape]
    spec = {
        "task": task,
        "model_path": str(folder),
        "method": name,
        "train_file": str(pairs_file),
        "text_column": "prompt",
        "label_column": "response",
        "template": "plain",
        "output_dir": str(tmp_path),
        "params": {"epochs": 1, "batch_size": 8, "max_length": 32},
    }
    if task not in method.tasks:  # e.g. Context-PEFT, SFT only
        with pytest.raises(TrainingError) as raised:
            run(spec, ListSink())
        assert raised.value.kind == BAD_PARAMS and f"does not support the task '{task}'" in raised.value.message
        return
    reason = method.supports(shape, task)
    if reason:
        with pytest.raises(TrainingError) as raised:
            run(spec, ListSink())
        assert raised.value.kind == BAD_PARAMS and raised.value.message == reason
        return

    runner = _task(folder, task)
    features = runner.encode([SftExample(i, prompt=f"colour {i}: {WORDS[i]}", response=WORDS[i - 1]) for i in range(8)])
    batch = runner.collate(features)
    torch.manual_seed(0)
    model, new_modules = get_task(task).load_model(folder, [], runner.tokenizer)
    params = validate_params(method.params, {})[0]
    model = method.build(model, params, task, new_modules=new_modules, total_steps=STEPS)
    if method.data_init is not None:  # as train.py does before the first step (Trainable Tokens picks its tokens)
        method.data_init(model, params, TrainingSample(runner, features, 8, torch.device("cpu"), lambda: None, False))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == count_trainable(folder, name, {}, task)["trainable"] > 0
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=method.recommended_learning_rate
    )

    def loss_now():
        model.eval()
        with torch.no_grad():
            return runner.loss(model, batch).item()

    before = loss_now()
    for step in range(STEPS):
        model.train()
        loss = runner.loss(model, batch)
        if method.extra_loss is not None:
            loss = loss + method.extra_loss(model)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if method.on_step is not None:
            method.on_step(model, step)
    assert loss_now() < before

    result = fit(spec, ListSink())
    result.model.eval()
    generator = load_predictor(folder, result.adapter_dir)
    inputs = _without_labels(batch, result.model.config)
    with torch.no_grad():
        trained = result.model(**inputs).logits
        reloaded = generator.model(**inputs).logits
    torch.testing.assert_close(reloaded, trained, rtol=1e-4, atol=1e-4)


def _without_labels(batch, config):
    """The inputs without labels (a reloaded AdaLoRA model cannot take labels: peft adds a training-only penalty
    then); a seq2seq model gets its decoder inputs, the labels shifted right, instead."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    if config.is_encoder_decoder:
        labels = batch["labels"].masked_fill(batch["labels"] == -100, config.pad_token_id)
        start = torch.full_like(labels[:, :1], config.decoder_start_token_id)
        inputs["decoder_input_ids"] = torch.cat([start, labels[:, :-1]], dim=1)
    return inputs
