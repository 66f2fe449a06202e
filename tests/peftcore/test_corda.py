"""CorDA (peftcore/corda.py, LoRA's init: corda / corda_kpm): the covariance is gathered row by row over real
tokens only (a padded batch gives what one-row batches give), the start leaves the output unchanged, the
instruction-previewed mode takes the largest components of W·C and the knowledge-preserved mode the smallest, and
GPT-2's transposed layers start and reload (test_base_moving_starts.py: the saved plain LoRA of twice the rank; the
method matrix and the resume matrix have both modes too)."""

import json

import torch

from peftcore.corda import covariances, eigens, initialise
from peftcore.events import ListSink
from peftcore.methods import get_method
from peftcore.schema import validate_params
from peftcore.tasks import load_tokenizer
from peftcore.tasks.text_classification import collate, encode, load_model
from peftcore.train import fit
from tests.tiny_models import sentiment_rows

R = 4


def _inputs(tokenizer, texts):
    return collate(encode(tokenizer, texts, 32), tokenizer.pad_token_id)


def _built(folder, tokenizer, init="corda"):
    lora = get_method("lora")
    torch.manual_seed(0)
    model, new_modules = load_model(folder, ["0", "1"], tokenizer.pad_token_id)
    params = validate_params(lora.params, {"init": init, "r": R})[0]
    return lora.build(model, params, "text-classification", new_modules=new_modules)


def _texts(n, seed=4):
    return [text for text, _ in sentiment_rows(n, seed=seed)]


def test_a_padded_batch_gives_the_covariance_of_its_rows_read_one_at_a_time(bert_without_dropout):
    tokenizer = load_tokenizer(bert_without_dropout)
    model = _built(bert_without_dropout, tokenizer)
    texts = _texts(8)
    batch = _inputs(tokenizer, texts)
    assert (batch["attention_mask"] == 0).any()  # rows of different lengths: there is padding to leave out
    together = covariances(model, [batch])
    apart = covariances(model, [_inputs(tokenizer, [t]) for t in texts])
    assert len(together) == 12
    for layer, covariance in together.items():
        torch.testing.assert_close(covariance, apart[layer], rtol=1e-4, atol=1e-5)


def test_the_eigens_rebuild_the_weight_and_the_modes_take_opposite_ends():
    torch.manual_seed(0)
    weight, x = torch.randn(12, 10), torch.randn(200, 10) * torch.linspace(0.1, 3, 10)
    covariance = x.T @ x / 200
    everything = eigens(weight, covariance, 10, "ipm")
    rebuilt = everything.U_WC @ torch.diag(everything.S_WC) @ everything.V_WC.T
    torch.testing.assert_close(rebuilt, weight, rtol=1e-3, atol=1e-3)  # W·C·C^-1 (C damped 1%: close, not exact)
    ipm, kpm = eigens(weight, covariance, 3, "ipm"), eigens(weight, covariance, 3, "kpm")
    torch.testing.assert_close(ipm.S_WC, everything.S_WC[:3])
    torch.testing.assert_close(kpm.S_WC, everything.S_WC[-3:])
    assert ipm.S_WC.min() > kpm.S_WC.max()


def test_the_start_leaves_the_output_unchanged_and_ipm_moves_more_of_the_weight_than_kpm(bert_without_dropout):
    tokenizer = load_tokenizer(bert_without_dropout)
    batch = _inputs(tokenizer, _texts(16))
    moved = {}
    for init in ("corda", "corda_kpm"):
        model = _built(bert_without_dropout, tokenizer, init).eval()
        with torch.no_grad():
            before = model(**batch).logits
        initialise(model, [batch], init)
        with torch.no_grad():
            after = model(**batch).logits
        torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)
        start = model.peftcore_start_factors
        assert len(start) == 2 * 12  # each layer's A0 and B0, kept for the conversion
        assert all(float(v.norm()) > 0 for k, v in start.items() if ".lora_B." in k)  # LoRA's own start: B = 0
        moved[init] = sum(
            float((start[k.replace(".lora_A.", ".lora_B.")] @ v).norm()) for k, v in start.items() if ".lora_A." in k
        )
    assert moved["corda"] > 2 * moved["corda_kpm"]  # 3.3x on this random model, whose spectrum is flat


def test_gpt2s_transposed_layers_start_and_reload_on_the_untouched_model(tiny_shape, tmp_path):
    """GPT-2 stores its attention weight as (in, out): the eigens are taken in (out, in) layout and the SFT
    adapter reloads through the predictor with the trained logits."""
    from peftcore.predict import load_predictor
    from peftcore.sft import SftExample
    from peftcore.tasks import get_task

    folder = tiny_shape("gpt2")
    rows = [{"prompt": f"colour {i}: {w}", "response": w[::-1]} for i, w in enumerate(["red", "blue", "gold"] * 8)]
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    spec = {
        "task": "sft",
        "model_path": str(folder),
        "method": "lora",
        "method_params": {"init": "corda", "r": R},
        "train_file": str(data),
        "text_column": "prompt",
        "label_column": "response",
        "template": "plain",
        "output_dir": str(tmp_path / "out"),
        "params": {"epochs": 1, "batch_size": 8, "max_length": 32},
    }
    result = fit(spec, ListSink())
    assert json.loads((result.adapter_dir / "adapter_config.json").read_text())["r"] == 2 * R
    runner = get_task("sft").runner(tokenizer=load_tokenizer(folder), options={"template": "plain"}, max_length=32)
    batch = runner.collate(runner.encode([SftExample(0, prompt="colour 0: red", response="der")]))
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        trained = result.model.eval()(**inputs).logits
        reloaded = load_predictor(folder, result.adapter_dir).model(**inputs).logits
    torch.testing.assert_close(reloaded, trained, rtol=1e-4, atol=1e-4)
