"""Merged export: a LoRA adapter folded into a tiny Gemma 3's weights loads with transformers alone and writes
exactly what the adapter writes; the Modelfile lays prompts out as in training; methods that cannot fold are
refused with the reason."""

import shutil
from pathlib import Path

import pytest
import torch

from peftcore.merge import MODELFILE, MergeError, merge, merge_refusal
from peftcore.predict import load_predictor, predict
from peftcore.sft import SftExample, end_token_id, prompt_ids
from tests.tiny_models import make_review_answer_file, train_tiny_lora_sft

PROMPTS = ["the film was lovely and superb", "the film was dull and boring"]


@pytest.fixture(scope="module")
def trained(tiny_shape, tmp_path_factory):
    folder = tiny_shape("gemma3")
    pairs = make_review_answer_file(tmp_path_factory.mktemp("data") / "pairs.jsonl")
    return folder, train_tiny_lora_sft(folder, pairs, tmp_path_factory.mktemp("out"), learning_rate=1e-2)


def test_the_merged_model_writes_what_the_adapter_writes(trained, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, adapter = trained
    studio = [g["generation"] for g in predict(load_predictor(folder, adapter), PROMPTS, max_new_tokens=6)]
    out = merge(folder, adapter, tmp_path / "merged", base_name="tiny Gemma 3", job_name="reviews")
    assert not (out / "adapter_config.json").exists() and list(out.glob("*.safetensors"))
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    changed = any(
        not torch.equal(a, b) for a, b in zip(model.state_dict().values(), base.state_dict().values(), strict=True)
    )
    assert changed  # the adapter is in the weights
    merged = []
    for prompt in PROMPTS:  # the prompt laid out as in training (Gemma's turns), nothing from peft
        ids = torch.tensor([prompt_ids(SftExample(0, prompt=prompt, response="-"), tokenizer, "gemma")])
        with torch.no_grad():
            out_ids = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=6,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=end_token_id(tokenizer),
            )
        merged.append(tokenizer.decode(out_ids[0, ids.shape[1] :], skip_special_tokens=True).strip())
    assert merged == studio
    modelfile = (out / MODELFILE).read_text()
    assert modelfile.startswith("FROM .\n") and "<start_of_turn>user\n{{ .Prompt }}<end_of_turn>" in modelfile
    assert "ollama create" in (out / "README.md").read_text()


def test_methods_that_cannot_fold_are_refused(trained, tmp_path):
    assert "prompt vectors" in merge_refusal("prompt_tuning", "sft")
    assert "generation tasks" in merge_refusal("lora", "text-classification")
    assert merge_refusal("lora", "sft") is None
    folder, adapter = trained
    adapter = Path(shutil.copytree(adapter, tmp_path / "adapter"))
    (adapter / "peftcore_method.json").write_text('{"method": "prefix_tuning", "task": "sft"}')
    with pytest.raises(MergeError, match="cannot be folded"):
        merge(folder, adapter, tmp_path / "merged", base_name="x")
    assert not (tmp_path / "merged").exists()
