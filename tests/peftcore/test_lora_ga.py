"""LoRA-GA (peftcore/lora_ga.py, LoRA's init: lora_ga): the hook-gathered gradient of each adapted weight is
autograd's own, and the start leaves the model's output unchanged while A and B are no longer LoRA's zero start
(test_base_moving_starts.py: the saved plain LoRA of twice the rank; the method matrix and the resume matrix have
the lora_ga case too)."""

import torch

from peftcore.lora_ga import estimate, initialise
from peftcore.methods import get_method
from peftcore.schema import validate_params
from peftcore.tasks import load_tokenizer
from peftcore.tasks.text_classification import collate, encode, load_model
from tests.tiny_models import sentiment_rows

R = 4


def _batches(tokenizer):
    rows = sentiment_rows(32, seed=4)
    batches = []
    for i in range(0, 32, 16):
        batch = collate(encode(tokenizer, [t for t, _ in rows[i : i + 16]], 32), tokenizer.pad_token_id)
        batch["labels"] = torch.tensor([int(label) for _, label in rows[i : i + 16]])
        batches.append(batch)
    return batches


def _loss(model, batch):
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    return torch.nn.functional.cross_entropy(model(**inputs).logits, batch["labels"])


def _built(folder, tokenizer):
    lora = get_method("lora")
    torch.manual_seed(0)
    model, new_modules = load_model(folder, ["0", "1"], tokenizer.pad_token_id)
    params = validate_params(lora.params, {"init": "lora_ga", "r": R})[0]
    return lora.build(model, params, "text-classification", new_modules=new_modules)


def test_the_gathered_gradient_is_autograds(bert_without_dropout):
    tokenizer = load_tokenizer(bert_without_dropout)
    batches = _batches(tokenizer)
    model = _built(bert_without_dropout, tokenizer)
    gathered = estimate(model, batches, _loss)
    assert len(gathered) == 12

    torch.manual_seed(0)
    plain, _ = load_model(bert_without_dropout, ["0", "1"], tokenizer.pad_token_id)
    plain.load_state_dict({k.removeprefix("base_model.model."): v for k, v in model.state_dict().items()}, strict=False)
    plain.requires_grad_(False)
    for module in plain.modules():
        if isinstance(module, torch.nn.Linear):
            module.weight.requires_grad_(True)
    plain.eval()
    for batch in batches:
        _loss(plain, batch).backward()
    by_name = dict(plain.named_modules())
    for layer, grad in gathered.items():
        name = next(n for n, m in model.base_model.model.named_modules() if m is layer)
        expected = by_name[name].weight.grad / len(batches)
        torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-6)


def test_the_start_leaves_the_output_unchanged_and_moves_both_factors(bert_without_dropout, tmp_path):
    tokenizer = load_tokenizer(bert_without_dropout)
    batches = _batches(tokenizer)
    model = _built(bert_without_dropout, tokenizer).eval()
    inputs = {k: v for k, v in batches[0].items() if k != "labels"}
    with torch.no_grad():
        before = model(**inputs).logits
    initialise(model, batches, _loss)
    with torch.no_grad():
        after = model(**inputs).logits
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-5)
    b_norms = [float(p.detach().norm()) for n, p in model.named_parameters() if "lora_B" in n]
    assert min(b_norms) > 0  # LoRA's own start has B = 0
    assert len(model.peftcore_start_factors) == 2 * 12  # each layer's A0 and B0, kept for the conversion
