"""The method matrix beyond BERT: every registered method on a tiny GPT-2, Llama, Gemma 3 and T5 (classification heads on
decoder-only and encoder-decoder shapes). Where a method supports the shape, a few steps reduce the loss,
exactly its parameters train (as many as the meta-device count) and save then reload gives identical logits;
where it does not, the job is refused with the method's reason before anything trains."""

import json

import pytest
import torch

import peftcore
from peftcore.counting import count_trainable
from peftcore.errors import BAD_PARAMS, TrainingError
from peftcore.events import ListSink
from peftcore.methods import all_methods, get_method
from peftcore.schema import validate_params
from peftcore.tasks import load_tokenizer
from peftcore.tasks.text_classification import collate, encode, load_model
from peftcore.train import fit, run
from tests.peftcore.conftest import SHAPES, loss_before_and_after, make_spec
from tests.tiny_models import sentiment_rows

TASK = "text-classification"
STEPS = 8
CASES = [(shape, m.name) for shape in SHAPES for m in all_methods() if TASK in m.tasks]
IDS = [f"{shape}-{name}" for shape, name in CASES]


def _batch(tokenizer, rows):
    features = encode(tokenizer, [text for text, _ in rows], 32)
    batch = collate(features, tokenizer.pad_token_id, tokenizer.padding_side)
    return batch, torch.tensor([int(label) for _, label in rows])


@pytest.mark.parametrize("shape, name", CASES, ids=IDS)
def test_every_method_trains_saves_and_reloads_or_is_refused_on_every_shape(
    tiny_shape, sentiment_tsv, tmp_path, shape, name
):
    folder, method = tiny_shape(shape), get_method(name)
    reason = method.supports(json.loads((folder / "config.json").read_text())["model_type"], TASK)
    spec = make_spec(
        folder,
        sentiment_tsv,
        tmp_path / "out",
        method=name,
        params={"epochs": 1, "batch_size": 16, "max_rows": 32, "max_length": 32},
    )
    if reason:
        sink = ListSink()
        with pytest.raises(TrainingError) as raised:
            run(spec, sink)
        assert raised.value.kind == BAD_PARAMS and raised.value.message == reason
        assert [e["event"] for e in sink.events] == ["error"]
        return

    tokenizer = load_tokenizer(folder)
    torch.manual_seed(0)
    model, new_modules = load_model(folder, ["0", "1"], tokenizer.pad_token_id)
    head = sum(p.numel() for n, p in model.named_parameters() if n.rsplit(".", 1)[0] in new_modules)
    model = method.build(model, validate_params(method.params, {})[0], TASK, new_modules=new_modules, total_steps=STEPS)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    counted = count_trainable(folder, name, {}, TASK)
    assert trainable == counted["trainable"] > counted["head"] == head
    assert counted["total"] == sum(p.numel() for p in model.parameters())

    batch, targets = _batch(tokenizer, sentiment_rows(16, seed=1))
    before, after = loss_before_and_after(model, method, batch, targets, STEPS)
    assert after < before

    result = fit(spec, ListSink())
    result.model.eval()
    with torch.no_grad():
        expected = result.model(**batch).logits
    torch.manual_seed(123)
    fresh, _ = load_model(folder, result.labels, tokenizer.pad_token_id)
    reloaded = peftcore.load_adapter(fresh, result.adapter_dir)
    reloaded.eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(**batch).logits, expected, atol=1e-5)
