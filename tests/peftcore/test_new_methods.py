"""AdaLink, bottleneck adapters and S2FT beyond the matrix: their parameter formulas, that each starts from the
base model, S2FT's merge and saved columns, and a forward pass on the other declared architectures."""

import json

import pytest
import torch

from peftcore.counting import _new_modules, count_on_meta
from peftcore.events import ListSink
from peftcore.methods import get_method
from peftcore.methods._common import MethodBuildError
from peftcore.schema import validate_params
from peftcore.tasks import load_tokenizer
from peftcore.tasks.text_classification import load_model
from peftcore.train import fit
from tests.peftcore.conftest import make_spec

TASK = "text-classification"
HEAD = 66  # tiny BERT: 32 x 2 + 2
HIDDEN, HEADS, INTER, BLOCKS = 32, 2, 64, 2


def _build(tiny_bert, name, params):
    method = get_method(name)
    clean, errors = validate_params(method.params, params)
    assert errors == {}
    tokenizer = load_tokenizer(tiny_bert)
    torch.manual_seed(0)
    model, new_modules = load_model(tiny_bert, ["0", "1"], tokenizer.pad_token_id)
    return tokenizer, method.build(model, clean, TASK, new_modules=new_modules)


def _trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("rank", [1, 4, 16])
def test_adalink_trains_two_low_rank_matrices_on_the_embeddings_only(tiny_bert, rank):
    _, model = _build(tiny_bert, "adalink", {"rank": rank})
    names = {n for n, p in model.named_parameters() if p.requires_grad} - {"classifier.weight", "classifier.bias"}
    assert names == {
        "bert.embeddings.word_embeddings.adalink.down.weight",
        "bert.embeddings.word_embeddings.adalink.up.weight",
    }
    assert _trainable(model) - HEAD == 2 * HIDDEN * rank


@pytest.mark.parametrize(
    "params, adapters, width",
    [
        ({}, BLOCKS, HIDDEN // 16),
        ({"config": "houlsby"}, 2 * BLOCKS, HIDDEN // 16),
        ({"config": "houlsby", "reduction_factor": 4, "layers": "last 1"}, 2, HIDDEN // 4),
        ({"reduction_factor": 64}, BLOCKS, 1),  # never narrower than one unit
    ],
)
def test_bottleneck_adapter_count_follows_the_formula(tiny_bert, params, adapters, width):
    _, model = _build(tiny_bert, "bottleneck", params)
    assert _trainable(model) - HEAD == adapters * (2 * HIDDEN * width + width + HIDDEN)


@pytest.mark.parametrize(
    "params, heads, channels, blocks",
    [
        ({}, 1, round(0.02 * INTER), BLOCKS),
        ({"head_fraction": 1.0, "channel_fraction": 0.5}, HEADS, INTER // 2, BLOCKS),
        ({"head_fraction": 0, "channel_fraction": 0.25, "layers": "0"}, 0, INTER // 4, 1),
        ({"head_fraction": 0.5, "channel_fraction": 0}, 1, 0, BLOCKS),
    ],
)
def test_s2ft_count_follows_the_formula(tiny_bert, params, heads, channels, blocks):
    _, model = _build(tiny_bert, "s2ft", params)
    head_size = HIDDEN // HEADS
    assert _trainable(model) - HEAD == blocks * HIDDEN * (heads * head_size + channels)


def test_s2ft_selects_whole_heads_the_same_way_for_the_same_seed(tiny_bert):
    def chosen(seed):
        _, model = _build(tiny_bert, "s2ft", {"seed": seed, "head_fraction": 0.5, "channel_fraction": 0.25})
        return {n: b.tolist() for n, b in model.named_buffers() if n.endswith("peftcore_s2ft_index")}

    first = chosen(7)
    assert first == chosen(7)
    for name, columns in first.items():
        if "attention" in name:  # one whole head of 16 contiguous columns
            assert len(columns) == 16 and columns[0] % 16 == 0 and columns == list(range(columns[0], columns[0] + 16))
        else:
            assert len(columns) == 16 and columns == sorted(set(columns))
    assert any(chosen(seed) != first for seed in (1, 2, 3))


def test_s2ft_refuses_to_train_nothing(tiny_bert):
    with pytest.raises(MethodBuildError, match="above 0"):
        _build(tiny_bert, "s2ft", {"head_fraction": 0, "channel_fraction": 0})


@pytest.mark.parametrize("name", ["adalink", "bottleneck", "s2ft"])
def test_each_starts_as_the_base_model(tiny_bert, name):
    tokenizer, model = _build(tiny_bert, name, {})
    torch.manual_seed(0)
    base, _ = load_model(tiny_bert, ["0", "1"], tokenizer.pad_token_id)
    batch = tokenizer(["a lovely film", "a dull plot , truly tedious"], padding=True, return_tensors="pt")
    model.eval(), base.eval()
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, base(**batch).logits)


def test_s2ft_saves_only_the_changed_columns_and_merges_into_the_base_weights(tiny_bert, sentiment_tsv, tmp_path):
    from safetensors.torch import load_file

    from peftcore.methods._torch_parts import merge_s2ft

    spec = make_spec(
        tiny_bert,
        sentiment_tsv,
        tmp_path / "out",
        method="s2ft",
        method_params={"head_fraction": 0.5, "channel_fraction": 0.25},
        params={"epochs": 1, "batch_size": 16, "max_rows": 40, "max_length": 32, "learning_rate": 1e-2},
    )
    result = fit(spec, ListSink())
    saved = load_file(str(result.adapter_dir / "peftcore_adapter.safetensors"))
    deltas = {k: v for k, v in saved.items() if k.endswith("s2ft_delta")}
    indices = {k: v for k, v in saved.items() if k.endswith("peftcore_s2ft_index")}
    assert len(deltas) == len(indices) == 2 * BLOCKS
    assert set(saved) - set(deltas) - set(indices) == {"classifier.weight", "classifier.bias"}
    assert all(v.shape == (HIDDEN, 16) for v in deltas.values())
    assert any(v.abs().sum() > 0 for v in deltas.values())
    config = json.loads((result.adapter_dir / "peftcore_adapter.json").read_text())
    assert config["peftcore_method"] == "s2ft"

    tokenizer = load_tokenizer(tiny_bert)
    batch = tokenizer(["a lovely film", "what a dull , tedious plot"], padding=True, return_tensors="pt")
    model = result.model.eval()
    with torch.no_grad():
        expected = model(**batch).logits
        before = {n: p.clone() for n, p in model.named_parameters() if n.endswith("dense.weight")}
        assert merge_s2ft(model) == 2 * BLOCKS
        assert not [n for n, _ in model.named_parameters() if "s2ft" in n]
        assert torch.allclose(model(**batch).logits, expected, atol=1e-5)
    changed = {n for n, p in model.named_parameters() if n in before and not torch.equal(p, before[n])}
    assert changed == {
        f"bert.encoder.layer.{i}.{part}.dense.weight" for i in range(BLOCKS) for part in ("attention.output", "output")
    }
    for name in changed:  # only the selected columns moved
        moved = (model.get_parameter(name) != before[name]).any(dim=0).nonzero().flatten().tolist()
        index = saved[name.replace("weight", "peftcore_s2ft_index")].tolist()
        assert set(moved) <= set(index)


def _tiny_config(model_type):
    from transformers import AutoConfig

    shapes = {
        "llama": dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=100,
            pad_token_id=0,
        ),
        "gpt2": dict(n_embd=32, n_layer=2, n_head=4, vocab_size=100, pad_token_id=0),
        "t5": dict(
            d_model=32,
            d_ff=64,
            d_kv=8,
            num_layers=2,
            num_heads=4,
            vocab_size=100,
            pad_token_id=0,
            decoder_start_token_id=0,
            eos_token_id=1,
        ),
        "distilbert": dict(dim=32, hidden_dim=64, n_layers=2, n_heads=4, vocab_size=100),
    }
    return AutoConfig.for_model(model_type, num_labels=2, **shapes[model_type])


@pytest.mark.parametrize("model_type", ["llama", "gpt2", "t5", "distilbert"])
@pytest.mark.parametrize("name", ["adalink", "bottleneck", "s2ft"])
def test_declared_architectures_build_run_and_count(model_type, name):
    from transformers import AutoModelForSequenceClassification

    config = _tiny_config(model_type)
    counted = count_on_meta(config, name, {}, TASK)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(config)
    heads = _new_modules(model, None)  # the head modules count_on_meta trains for a config-only model
    method = get_method(name)
    clean, _ = validate_params(method.params, {})
    model = method.build(model, clean, TASK, new_modules=heads)
    assert _trainable(model) == counted["trainable"]
    ids = torch.tensor([[5, 6, 7, 1], [9, 10, 11, 1]])  # ending in 1: T5 classifies at its <eos>
    loss = torch.nn.functional.cross_entropy(model(input_ids=ids).logits, torch.tensor([0, 1]))
    loss.backward()
    grads = [n for n, p in model.named_parameters() if p.grad is not None]
    assert grads and all(p.requires_grad for n, p in model.named_parameters() if n in grads)
    adapter = [n for n, p in model.named_parameters() if p.requires_grad and not n.startswith(tuple(heads))]
    assert adapter and set(adapter) <= set(grads) | {n for n in adapter if ".up." in n or "s2ft" in n}


@pytest.mark.parametrize("model_type", ["llama", "gpt2", "t5", "distilbert"])
def test_s2ft_merges_on_every_declared_layout(model_type):
    """Linear and GPT-2's Conv1D (weights stored in x out) both take the trained columns back in place."""
    from transformers import AutoModelForSequenceClassification

    from peftcore.methods._torch_parts import merge_s2ft

    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(_tiny_config(model_type)).eval()
    clean, _ = validate_params(get_method("s2ft").params, {"head_fraction": 0.5, "channel_fraction": 0.25})
    model = get_method("s2ft").build(model, clean, TASK)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("s2ft_delta"):
                parameter.normal_(0, 0.5)
        ids = torch.tensor([[5, 6, 7, 1], [9, 10, 11, 1]])
        expected = model(input_ids=ids).logits
        assert merge_s2ft(model) > 0
        assert torch.allclose(model(input_ids=ids).logits, expected, atol=1e-5)
