"""Preference tuning (DPO, ORPO and KTO, peftcore/tasks/preference.py) on a tiny Llama: the DPO loss is trl's
DPOTrainer's on the same pair and ORPO's odds-ratio term trl's ORPOTrainer's, KTO's loss has its defining
properties and its KL estimate reads mismatched pairs, a run with any of them learns to rank the chosen answer
above the rejected one, and bad rows or methods are refused with the reason before anything
trains."""

import json

import pytest
import torch

from peftcore.errors import BAD_DATA, BAD_PARAMS, TrainingError
from peftcore.events import ListSink
from peftcore.methods import all_methods
from peftcore.tasks import TASKS_WITHOUT_REFERENCE, get_task
from peftcore.tasks.preference import PreferencePair, dpo_loss
from peftcore.train import fit, run
from tests.tiny_models import make_preference_file


def _spec(model, data, out, **more) -> dict:
    return {
        "task": "preference",
        "model_path": str(model),
        "method": "lora",
        "train_file": str(data),
        "output_dir": str(out),
        "metadata": {"base_model": "local:tiny"},
        "text_column": "review",
        "label_column": "chosen",
        "input_column": "rejected",
        "template": "alpaca",
        "params": {"epochs": 4, "batch_size": 8, "max_length": 48, "learning_rate": 1e-2},
        **more,
    }


def _learned(tiny_shape, tmp_path, loss: str):
    """Train on 48 pairs (16 held out) with `loss`: (the result, the first evaluation's metrics, the report)."""
    data = make_preference_file(tmp_path / "pairs.jsonl")
    sink = ListSink()
    spec = _spec(tiny_shape("llama"), data, tmp_path / "out")
    spec["params"].update(max_rows=64, preference_loss=loss)
    result = fit(spec, sink)
    first = next(e["metrics"] for e in sink.events if e["event"] == "eval")
    report = result.done["report"]
    assert report["metrics"]["reward_accuracy"] >= 0.9 and report["metrics"]["reward_margin"] > 0
    assert report["metrics"]["eval_loss"] < first["eval_loss"] and report["loss"] == loss
    return result, first, report


def test_the_loss_is_trls_dpo_loss_on_the_same_pair(tiny_shape, tmp_path):
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    folder = tiny_shape("llama")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.eos_token = tokenizer.eos_token or "[SEP]"  # trl appends it to every answer
    torch.manual_seed(0)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(folder), config)
    with torch.no_grad():  # a trained-looking adapter, so policy and reference differ
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.5)
    pairs = {
        "prompt": ["the film was great and", "a dull film"],
        "chosen": [" positive", " negative"],
        "rejected": [" negative", " positive"],
    }
    args = DPOConfig(output_dir=str(tmp_path), beta=0.1, per_device_train_batch_size=2, report_to=[], use_cpu=True)
    trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_dict(pairs), processing_class=tokenizer)
    with torch.no_grad():  # trl copies a given adapter as its reference ("ref"); zeroed, it is the untouched model
        for name, parameter in trainer.model.named_parameters():
            if "lora_B.ref" in name:
                parameter.zero_()
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    trainer.model.eval()
    with torch.no_grad():
        theirs = float(trainer.compute_loss(trainer.model, batch))
        runner = get_task("preference").runner(tokenizer=tokenizer, options={"beta": 0.1})
        labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
        ours_batch = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"], "labels": labels}
        chosen, rejected, losses = runner.rewards(trainer.model, ours_batch)
        ours = float(dpo_loss(chosen, rejected).mean())
    assert float(losses.mean()) == ours
    assert abs(theirs - 0.6931) > 1e-3  # not the untrained value: the comparison means something
    assert ours == pytest.approx(theirs, abs=1e-5)


def test_a_run_learns_to_rank_the_chosen_answer_first(tiny_shape, tmp_path):
    result, first, report = _learned(tiny_shape, tmp_path, "dpo")
    assert first["reward_accuracy"] == 0.0 and first["eval_loss"] == pytest.approx(0.6931, abs=1e-3)
    assert report["metrics"]["reward_margin"] > 0.2 and report["metrics"]["eval_loss"] < 0.6
    saved = json.loads((result.adapter_dir / "peftcore_method.json").read_text())
    assert saved["task"] == "preference" and saved["beta"] == 0.1 and saved["template"] == "alpaca"


def test_orpo_is_the_answers_sft_loss_plus_trls_odds_ratio_term(tiny_shape):
    from types import SimpleNamespace

    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl.experimental.orpo import ORPOTrainer

    folder = tiny_shape("llama")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    options = {"beta": 0.25, "loss": "orpo", "template": "alpaca"}
    runner = get_task("preference").runner(tokenizer=tokenizer, options=options, max_length=48)
    pair = PreferencePair(0, prompt="the film was great and", response="positive", rejected="negative words here")
    batch = runner.collate([runner.encode_one(pair)])
    with torch.no_grad():
        chosen, rejected, losses = runner.rewards(model, batch)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        # trl's own log-likelihoods (the mean over answer tokens) and odds-ratio term on the same logits
        theirs_logps = ORPOTrainer.get_batch_logps(logits, batch["labels"], average_log_prob=True)
        trainer = SimpleNamespace(beta=0.25, accelerator=SimpleNamespace(device="cpu"))
        terms, their_chosen, their_rejected, _, _ = ORPOTrainer.odds_ratio_loss(
            trainer, theirs_logps[:1], theirs_logps[1:]
        )
        labels = batch["labels"][:1, 1:]
        nll = torch.nn.functional.cross_entropy(logits[:1, :-1].flatten(0, 1), labels.flatten(), ignore_index=-100)
    assert (float(chosen), float(rejected)) == pytest.approx((float(their_chosen), float(their_rejected)), abs=1e-5)
    assert float(losses[0]) == pytest.approx(float(nll - terms[0]), abs=1e-5)
    assert float(chosen) != float(rejected)  # two different answers: the comparison means something


def test_an_orpo_run_learns_to_rank_the_chosen_answer_first_without_a_reference(tiny_shape, tmp_path, monkeypatch):
    from peft import PeftModel

    def no_reference(self):
        raise AssertionError("ORPO must not switch the adapter off for a reference")

    monkeypatch.setattr(PeftModel, "disable_adapter", no_reference)
    result, _, _ = _learned(tiny_shape, tmp_path, "orpo")
    saved = json.loads((result.adapter_dir / "peftcore_method.json").read_text())
    assert saved["loss"] == "orpo"
    assert "Preference loss: ORPO" in (result.adapter_dir / "README.md").read_text()


def test_identical_pairs_are_refused_with_their_rows(tiny_shape, tmp_path):
    data = make_preference_file(tmp_path / "pairs.jsonl", rows=20)
    lines = data.read_text().splitlines()
    for i in (3, 7):
        record = json.loads(lines[i])
        lines[i] = json.dumps({**record, "rejected": record["chosen"]})
    data.write_text("\n".join(lines) + "\n")
    with pytest.raises(TrainingError) as raised:
        run(_spec(tiny_shape("llama"), data, tmp_path / "out"), ListSink())
    assert raised.value.kind == BAD_DATA
    assert "2 training row(s) (4, 8) have the same chosen and rejected answer" in raised.value.message


def test_an_empty_rejected_answer_is_refused_naming_the_column(tiny_shape, tmp_path):
    data = make_preference_file(tmp_path / "pairs.jsonl", rows=20)
    lines = data.read_text().splitlines()
    lines[5] = json.dumps({**json.loads(lines[5]), "rejected": ""})
    data.write_text("\n".join(lines) + "\n")
    with pytest.raises(TrainingError) as raised:
        run(_spec(tiny_shape("llama"), data, tmp_path / "out"), ListSink())
    assert raised.value.kind == BAD_DATA and "'rejected'" in raised.value.message


def test_a_missing_third_column_and_a_method_without_an_adapter_are_refused(tiny_shape, tmp_path):
    data = make_preference_file(tmp_path / "pairs.jsonl", rows=20)
    with pytest.raises(TrainingError) as raised:
        run(_spec(tiny_shape("llama"), data, tmp_path / "out", input_column=None), ListSink())
    assert raised.value.kind == BAD_PARAMS and "missing: rejected" in raised.value.message
    with pytest.raises(TrainingError) as raised:
        run(_spec(tiny_shape("llama"), data, tmp_path / "out", method="red"), ListSink())
    assert raised.value.kind == BAD_PARAMS and "does not support the task 'preference'" in raised.value.message
    unsupported = {m.name for m in all_methods() if "preference" not in m.tasks}
    # no adapter to switch off for the reference; Context-PEFT and CPT are for SFT only
    assert unsupported == {"adalink", "bitfit", "bottleneck", "freeze", "full", "red", "s2ft", "context_lora", "cpt"}
    assert "preference" not in TASKS_WITHOUT_REFERENCE


def test_left_empty_the_max_length_is_chosen_from_the_longer_answer_of_each_pair(tiny_shape, tmp_path):
    data = make_preference_file(tmp_path / "pairs.jsonl", rows=24)
    lines = data.read_text().splitlines()
    long_answer = "positive " + "and it really was a very long and winding answer " * 3
    lines = [json.dumps({**json.loads(line), "rejected": long_answer.strip()}) for line in lines]
    data.write_text("\n".join(lines) + "\n")
    spec = _spec(tiny_shape("llama"), data, tmp_path / "out")
    spec["params"] = {"epochs": 1, "batch_size": 8}
    sink = ListSink()
    fit(spec, sink)
    start = next(e for e in sink.events if e["event"] == "start")
    assert "params.max_length" in start["choices"]
    done = sink.events[-1]
    chosen_length = done["report"]["params"]["max_length"]
    assert chosen_length >= 64, chosen_length  # the long rejected answer, not the one-word chosen one (40)


def test_kto_scores_each_answer_on_its_own_against_the_kl_reference_point():
    from peftcore.tasks.preference import kto_loss

    zero = torch.zeros(1)
    # untouched (log-ratios 0, KL 0): each answer's loss is 1 - sigmoid(0) = 0.5
    assert float(kto_loss(zero, zero, zero, 0.1)) == pytest.approx(0.5)
    # trl's formula, eq. 7 of the paper, on numbers worked by hand: beta 0.5, chosen +2, rejected -1, KL 0.4
    expected = ((1 - torch.sigmoid(torch.tensor(0.5 * 1.6))) + (1 - torch.sigmoid(torch.tensor(0.5 * 1.4)))) / 2
    assert float(kto_loss(torch.tensor([2.0]), torch.tensor([-1.0]), torch.tensor(0.4), 0.5)) == pytest.approx(
        float(expected)
    )
    # unlike DPO, the chosen answer alone moving up lowers the loss whatever the rejected one does
    assert float(kto_loss(torch.tensor([1.0]), zero, zero, 0.1)) < 0.5
    # a higher reference point (the model drifted everywhere) asks more of the chosen answer (the rejected one
    # is far enough down to cost nothing either way)
    chosen, rejected = torch.tensor([1.0]), torch.tensor([-100.0])
    assert float(kto_loss(chosen, rejected, torch.tensor(1.0), 0.1)) > float(kto_loss(chosen, rejected, zero, 0.1))


def test_kto_borrows_the_next_pairs_answer_for_its_kl_estimate(tiny_shape):
    from transformers import AutoTokenizer

    from peftcore.tasks.preference import mismatched_pairs

    tokenizer = AutoTokenizer.from_pretrained(tiny_shape("llama"))
    runner = get_task("preference").runner(tokenizer=tokenizer, options={"template": "alpaca"}, max_length=64)
    pairs = [
        PreferencePair(i, prompt=p, response=c, rejected="dull")
        for i, (p, c) in enumerate((("the film was great", "positive"), ("bad", "negative words"), ("ok", "fine")))
    ]
    features = [runner.encode_one(pair) for pair in pairs]
    mismatched = mismatched_pairs(runner.collate(features), tokenizer.pad_token_id)

    def parts(feature):
        prompt = [t for t, label in zip(feature["input_ids"], feature["labels"]) if label == -100]
        return prompt, [t for t, label in zip(feature["input_ids"], feature["labels"]) if label != -100]

    for i in range(3):
        prompt, _ = parts(features[i]["chosen"])
        _, answer = parts(features[(i + 1) % 3]["chosen"])
        real = mismatched["attention_mask"][i].bool()
        assert mismatched["input_ids"][i][real].tolist() == prompt + answer
        assert mismatched["labels"][i][real].tolist() == [-100] * len(prompt) + answer


def test_a_kto_run_learns_to_rank_the_chosen_answer_first(tiny_shape, tmp_path):
    result, first, _ = _learned(tiny_shape, tmp_path, "kto")
    assert first["eval_loss"] == pytest.approx(0.5, abs=1e-3)  # untouched: every answer 1 - sigmoid(0)
    assert "Preference loss: KTO" in (result.adapter_dir / "README.md").read_text()
