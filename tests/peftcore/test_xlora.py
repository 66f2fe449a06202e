"""X-LoRA (peftcore/xlora.py): a router over finished LoRA adapters trains while they stay frozen, each expert run
alone is exactly its adapter, the saved folder reloads in plain peft with identical logits, and a learned
combination job scores its parents as the summed combination does."""

import pytest
import torch

from peftcore.adapters import AdapterLoadError, load_adapter, write_method_file
from peftcore.events import ListSink
from peftcore.methods import get_method
from peftcore.schema import validate_params
from peftcore.train import fit
from peftcore.xlora import OneExpert, save
from tests.tiny_models import make_colour_pairs_file


@pytest.fixture(scope="module")
def llama(tiny_shape):
    return tiny_shape("llama")


def _lora_params():
    return validate_params(get_method("lora").params, {"r": 4, "lora_alpha": 8})[0]


@pytest.fixture(scope="module")
def experts(llama, tmp_path_factory):
    """Three LoRA adapters with random (non-zero) updates, so each changes the model in its own way: two alike in
    placement (the sum combination needs that), and one that adapts the embeddings too (peft keeps those factors
    apart from the linear layers')."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root, folders = tmp_path_factory.mktemp("experts"), []
    for seed, targets in ((1, ["q_proj", "v_proj"]), (2, ["q_proj", "v_proj"]), (3, ["q_proj", "embed_tokens"])):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_pretrained(llama)
        config = LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=targets, init_lora_weights=False)
        get_peft_model(model, config).save_pretrained(root / str(seed))
        AutoTokenizer.from_pretrained(llama).save_pretrained(root / str(seed))  # as the studio's adapters carry it
        write_method_file(root / str(seed), method="lora", params=_lora_params(), task="sft", template="plain")
        folders.append(root / str(seed))
    return folders


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    return make_colour_pairs_file(tmp_path_factory.mktemp("data") / "pairs.jsonl")


def _base(llama):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(llama)


def _build(llama, experts, params):
    from peftcore.methods.xlora import build_over

    return build_over(experts)(_base(llama), params, "sft")


IDS = torch.tensor([[5, 9, 14, 3, 22, 7, 11], [8, 2, 30, 6, 19, 4, 12]])


def _logits(model):
    model.eval()
    with torch.no_grad():
        return model(input_ids=IDS).logits


def test_only_the_router_trains_over_frozen_adapters_and_the_loss_falls(llama, experts):
    params = validate_params(get_method("xlora").params, {})[0]
    model = _build(llama, experts[:2], params)
    trained = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trained and all("internal_xlora_classifier" in name for name in trained)
    experts_before = {n: p.detach().clone() for n, p in model.named_parameters() if ".lora_" in n}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)

    def loss():
        return model(input_ids=IDS, labels=IDS).loss

    model.eval()
    with torch.no_grad():
        before = loss().item()
    model.train()
    for _ in range(10):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        assert loss().item() < before
    # peft's scaling pass re-enables the experts: they must still be frozen and unchanged after training
    assert not any(p.requires_grad for n, p in model.named_parameters() if ".lora_" in n)
    for name, parameter in model.named_parameters():
        if name in experts_before:
            torch.testing.assert_close(parameter, experts_before[name], rtol=0, atol=0)


def test_each_expert_alone_is_exactly_its_adapter(llama, experts):
    from peft import PeftModel

    experts = [experts[0], experts[2]]
    model = _build(llama, experts, validate_params(get_method("xlora").params, {})[0])
    mixed = _logits(model)
    for i, folder in enumerate(experts):
        with OneExpert(model, str(i)):
            alone = _logits(model)
        torch.testing.assert_close(alone, _logits(PeftModel.from_pretrained(_base(llama), folder)))
    torch.testing.assert_close(_logits(model), mixed)  # the mix is back after each expert ran alone


def test_the_saved_folder_reloads_in_plain_peft_with_identical_logits(llama, experts, tmp_path):
    from peft import PeftConfig, PeftModel

    params = validate_params(get_method("xlora").params, {"layerwise": True, "depth": 2})[0]
    model = _build(llama, [experts[0], experts[2]], params)
    with torch.no_grad():  # a trained router: not its random start
        for parameter in model.parameters():
            if parameter.requires_grad:
                parameter.add_(torch.randn_like(parameter))
    expected = _logits(model)
    save(model, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0", "1", "adapter_config.json", "adapter_model.safetensors"]
    # the recipe in peftcore/xlora.py's docstring, in plain peft
    config = PeftConfig.from_pretrained(str(tmp_path))
    config.adapters = {name: f"{tmp_path}/{name}" for name in config.adapters}
    base = _base(llama)
    base.config.use_cache = False
    torch.testing.assert_close(_logits(PeftModel.from_pretrained(base, str(tmp_path), config=config)), expected)
    torch.testing.assert_close(_logits(load_adapter(_base(llama), tmp_path)), expected)
    for how in ({"trainable": True}, {"merge": True}):
        with pytest.raises(AdapterLoadError, match="cannot be|not merged"):
            load_adapter(_base(llama), tmp_path, **how)


def _spec(llama, pairs, out, **more):
    return {
        "task": "sft",
        "model_path": str(llama),
        "train_file": str(pairs),
        "text_column": "prompt",
        "label_column": "response",
        "template": "plain",
        "output_dir": str(out),
        "params": {"epochs": 2, "batch_size": 8, "max_length": 32, "eval_fraction": 0.25, "seed": 3},
        **more,
    }


def test_a_learned_combination_trains_the_router_and_scores_each_parent_as_a_sum_does(llama, experts, pairs, tmp_path):
    section = {"adapters": [str(f) for f in experts[:2]], "parents": [11, 12], "weights": [1.0, 1.0]}
    sink = ListSink()
    spec = _spec(llama, pairs, tmp_path / "learned", method="xlora", combine={**section, "combination": "learned"})
    spec["params"].update(epochs=4, learning_rate=1e-2, patience=0)
    learned = fit(spec, sink)
    start = next(e for e in sink.events if e["event"] == "start")
    assert start["total_steps"] > 0 and start["method"] == "xlora"
    summed = fit(
        _spec(
            llama,
            pairs,
            tmp_path / "sum",
            method="lora",
            method_params=_lora_params(),  # the parents' (a summed combination continues from them)
            combine={**section, "weights": [1.0, 0.0], "combination": "sum"},
        ),
        ListSink(),
    )
    mixed, added = learned.done["report"]["combination"], summed.done["report"]["combination"]
    assert [p["job"] for p in mixed["parents"]] == [11, 12]
    shares = [p["router_share"] for p in mixed["parents"]]  # the router's softmax over the two, on the eval rows
    assert all(0 < s < 1 for s in shares) and sum(shares) == pytest.approx(1.0, abs=1e-5)
    for ours, theirs in zip(mixed["parents"], added["parents"]):  # the same rows, each parent alone
        assert ours["metrics"]["eval_loss"] == pytest.approx(theirs["metrics"]["eval_loss"], rel=1e-5)
    # the router learned on the rows: the held-out loss fell from the first epoch on
    losses = [e["metrics"]["eval_loss"] for e in sink.events if e["event"] == "eval"]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert (learned.adapter_dir / "0" / "adapter_config.json").is_file()


def test_preference_tuning_trains_new_experts_against_the_base_model_as_reference(llama, tmp_path):
    from tests.tiny_models import make_preference_file

    spec = {
        "task": "preference",
        "model_path": str(llama),
        "method": "xlora",
        "train_file": str(make_preference_file(tmp_path / "pairs.jsonl")),
        "output_dir": str(tmp_path / "out"),
        "text_column": "review",
        "label_column": "chosen",
        "input_column": "rejected",
        "template": "alpaca",
        "params": {"epochs": 3, "batch_size": 8, "max_length": 48, "learning_rate": 1e-2, "max_rows": 64},
    }
    sink = ListSink()
    fit(spec, sink)
    evals = [e["metrics"] for e in sink.events if e["event"] == "eval"]
    # new experts start at zero: the policy is the reference (the adapter switched off) until it trains
    assert evals[0]["eval_loss"] == pytest.approx(0.6931, abs=1e-3)
    assert evals[-1]["reward_accuracy"] > 0.8 and evals[-1]["eval_loss"] < evals[0]["eval_loss"]


def test_the_model_cards_code_loads_the_adapter_and_what_cannot_work_is_refused(llama, pairs, tmp_path):
    from peftcore.errors import BAD_PARAMS, TrainingError
    from peftcore.start_from import start_refusal
    from peftcore.train import run

    result = fit(_spec(llama, pairs, tmp_path / "out", method="xlora"), ListSink())
    card = (result.adapter_dir / "README.md").read_text(encoding="utf-8")
    code = card.split("```python\n")[1].split("```")[0]
    code = code.replace('"path/to/this/adapter"', repr(str(result.adapter_dir)))
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # the card's own code, as a user runs it
    torch.testing.assert_close(_logits(scope["model"]), _logits(result.model))

    assert "cannot be trained further" in start_refusal("continue", "xlora", "xlora")
    stacked = start_refusal("stack", "xlora", "lora")
    assert "nothing can be stacked" in stacked and "continue training" not in stacked
    spec = _spec(llama, pairs, tmp_path / "again", method="xlora")
    spec["params"]["gradient_checkpointing"] = True
    with pytest.raises(TrainingError) as refused:
        run(spec, ListSink())
    assert refused.value.kind == BAD_PARAMS and "turn gradient checkpointing off" in refused.value.message
