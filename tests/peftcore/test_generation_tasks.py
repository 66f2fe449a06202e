"""SFT (causal LMs) and seq2seq training end to end on tiny random models: the answer is learned (generation
metrics rise from the baseline), the loss falls on the response only, the report carries samples, the adapter
reloads for generation, and models or data that cannot work are refused with a reason."""

import json
import re
import shutil

import pytest
import torch

from peftcore.adapters import METHOD_FILE
from peftcore.errors import BAD_DATA, BAD_PARAMS, TrainingError
from peftcore.events import ListSink
from peftcore.predict import adapter_task, load_predictor, predict
from peftcore.sft import IGNORE_INDEX, SftExample, masked_rows, read_sft_examples
from peftcore.tasks import get_task, load_tokenizer
from peftcore.tasks._generation import collate
from peftcore.train import fit, run
from tests.tiny_models import make_review_answer_file


@pytest.fixture(scope="module")
def sentiment_pairs(tmp_path_factory):
    """96 prompt/response rows: a review in, the word positive or negative out."""
    return make_review_answer_file(tmp_path_factory.mktemp("data") / "pairs.jsonl")


def spec_for(model, data, out, *, task, method="lora", **overrides):
    spec = {
        "task": task,
        "model_path": str(model),
        "method": method,
        "train_file": str(data),
        "text_column": "review",
        "label_column": "answer",
        "output_dir": str(out),
        "params": {"epochs": 1, "batch_size": 8, "max_length": 48},
        "metadata": {"base_model": "local:tiny"},
    }
    spec.update(overrides)
    return spec


@pytest.mark.parametrize("shape, task", [("llama", "sft"), ("t5", "seq2seq")])
def test_a_generation_task_learns_its_answers_and_reports_them(tiny_shape, sentiment_pairs, tmp_path, shape, task):
    sink = ListSink()
    result = fit(
        spec_for(
            tiny_shape(shape),
            sentiment_pairs,
            tmp_path / "out",
            task=task,
            method="full",
            params={
                "epochs": 6,
                "batch_size": 8,
                "max_length": 48,
                "learning_rate": 3e-3,
                "eval_fraction": 0.1,
                "patience": 0,
            },
        ),
        sink,
    )
    evals = [e for e in sink.events if e["event"] == "eval"]
    # the kept (best) epoch's weights get the full evaluation at the end: the done event's metrics
    baseline, final = evals[0]["metrics"], result.done["metrics"]
    # The untrained model writes noise; after training it answers the held-out reviews.
    assert baseline["exact_match"] == 0 and baseline["rouge_l"] < 0.2
    assert final["exact_match"] >= 0.8 and final["rouge_l"] >= 0.8 and final["bleu"] >= 80
    assert final["eval_loss"] < baseline["eval_loss"] / 2
    assert final["perplexity"] == pytest.approx(torch.tensor(final["eval_loss"]).exp().item(), rel=1e-5)
    # Epochs before the last report loss and perplexity only: generating is kept for the baseline and the end.
    assert all(set(e["metrics"]) == {"eval_loss", "perplexity"} for e in evals[1:-1])

    report = result.done["report"]
    assert report["task"] == task and report["labels"] == [] and report["baseline_metrics"] == baseline
    samples = report["samples"]
    assert len(samples) == report["generated_rows"] == report["eval_rows"] == 10
    assert [s["rouge_l"] for s in samples] == sorted((s["rouge_l"] for s in samples), reverse=True)
    assert {"row", "input", "reference", "generation", "baseline_generation"} <= set(samples[0])
    assert samples[0]["reference"] in ("positive", "negative") and samples[0]["input"].startswith("the film was")
    card = (result.adapter_dir / "README.md").read_text(encoding="utf-8")
    assert ("AutoModelForCausalLM" if task == "sft" else "AutoModelForSeq2SeqLM") in card
    assert "Labels" not in card

    # The playground's path: the saved folder reloads and answers as the trained model did.
    assert adapter_task(result.adapter_dir) == task
    generator = load_predictor(tiny_shape(shape), result.adapter_dir)
    answers = predict(generator, ["the film was lovely and superb", "the film was dull and tedious"], max_new_tokens=4)
    assert [a["generation"] for a in answers] == ["positive", "negative"]


def test_sft_loss_falls_on_the_response_tokens_only(tiny_shape, sentiment_pairs):
    sft = get_task("sft")
    runner = sft.runner(tokenizer=load_tokenizer(tiny_shape("llama")), options={"template": "alpaca"}, max_length=64)
    features = runner.encode(
        [
            SftExample(1, prompt="the film was great", response="positive"),
            SftExample(2, prompt="a long prompt " * 3, response="negative"),
        ]
    )
    batch = runner.collate(features)
    assert batch["labels"].shape == batch["input_ids"].shape
    model, _ = sft.load_model(tiny_shape("llama"), [], runner.tokenizer)
    loss = runner.loss(model, batch)
    # The same loss by hand: the next-token cross-entropy over the labelled positions only.
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    targets = batch["labels"][:, 1:]
    expected = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX
    )
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    learned = (targets != IGNORE_INDEX).sum().item()
    assert learned == sum(f["response_tokens"] for f in features) < batch["attention_mask"].sum().item() - 2


def test_collate_pads_inputs_and_ignores_padded_labels():
    batch = collate(
        [
            {"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "labels": [9]},
            {"input_ids": [5], "attention_mask": [1], "labels": [9, 8]},
        ],
        pad_token_id=0,
        padding_side="left",
    )
    assert batch["input_ids"].tolist() == [[5, 6, 7], [0, 0, 5]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 9], [9, 8]]


def test_sft_on_the_shared_instructions_maps_nested_columns(tiny_shape, shared_data, tmp_path):
    """Self-Instruct's outputs sit in a list of instances: instances[0].output is the response."""
    data = tmp_path / "seed_tasks.jsonl"
    shutil.copyfile(shared_data / "instructions" / "seed_tasks.jsonl", data)
    columns = dict(
        text_column="instruction",
        label_column="instances[0].output",
        input_column="instances[0].input",
        template="alpaca",
    )
    # Some tasks' prompts fill the tiny model's 128 positions: training refuses them, by row number, as the
    # pre-flight check finds them.
    examples = read_sft_examples(
        data, prompt_column="instruction", response_column="instances[0].output", input_column="instances[0].input"
    )
    masked = set(masked_rows(examples, load_tokenizer(tiny_shape("gpt2")), 128, "alpaca"))
    assert 0 < len(masked) < 40
    with pytest.raises(TrainingError) as raised:
        run(
            spec_for(tiny_shape("gpt2"), data, tmp_path / "all", task="sft", **columns, params={"max_length": 128}),
            ListSink(),
        )
    named = re.search(r"row\(s\) \(([\d, ]+)", raised.value.message).group(1)
    assert raised.value.kind == BAD_DATA and {int(n) for n in named.split(", ")} <= masked
    lines = data.read_text(encoding="utf-8").splitlines()
    data.write_text("\n".join(line for i, line in enumerate(lines, 1) if i not in masked) + "\n", encoding="utf-8")
    result = fit(
        spec_for(
            tiny_shape("gpt2"),
            data,
            tmp_path / "out",
            task="sft",
            **columns,
            params={"epochs": 1, "batch_size": 8, "max_length": 128, "max_rows": 40},
        ),
        ListSink(),
    )
    report = result.done["report"]
    assert report["train_rows"] + report["eval_rows"] == 40
    assert report["lineage"]["columns"]["label_column"] == "instances[0].output"
    assert report["lineage"]["template"] == "alpaca"
    assert json.loads((result.adapter_dir / METHOD_FILE).read_text())["template"] == "alpaca"
    originals = {
        json.loads(line)["instances"][0]["output"]
        for line in (shared_data / "instructions" / "seed_tasks.jsonl").read_text().splitlines()
    }
    assert all(sample["reference"] in originals for sample in report["samples"])


def test_sft_trains_on_a_messages_column(tiny_shape, tmp_path):
    rows = [
        {
            "chat": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": f"say {w}"},
                {"role": "assistant", "content": w},
            ]
        }
        for w in ("yes", "no", "maybe", "later") * 4
    ]
    data = tmp_path / "chat.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = fit(
        spec_for(
            tiny_shape("llama"),
            data,
            tmp_path / "out",
            task="sft",
            text_column=None,
            label_column=None,
            messages_column="chat",
        ),
        ListSink(),
    )
    samples = result.done["report"]["samples"]
    assert {s["reference"] for s in samples} <= {"yes", "no", "maybe", "later"}
    assert all(s["input"].startswith("say ") for s in samples)  # the last user message is shown as the input


def test_a_max_length_that_leaves_no_answer_is_refused_with_the_rows(tiny_shape, sentiment_pairs, tmp_path):
    sink = ListSink()
    with pytest.raises(TrainingError) as raised:
        run(
            spec_for(
                tiny_shape("llama"),
                sentiment_pairs,
                tmp_path / "out",
                task="sft",
                template="alpaca",
                params={"max_length": 16},
            ),
            sink,
        )
    assert raised.value.kind == BAD_DATA
    assert "raise the maximum length" in raised.value.message and "row(s) (" in raised.value.message
    assert not (tmp_path / "out" / "adapter").exists()


@pytest.mark.parametrize(
    "shape, task, says",
    [
        ("t5", "sft", "encoder-decoder model: choose the seq2seq task"),
        ("llama", "seq2seq", "not an encoder-decoder model"),
        ("bert", "sft", "not a causal language model"),
    ],
)
def test_a_model_that_cannot_do_the_task_is_refused_before_training(
    tiny_shape, tiny_bert, sentiment_pairs, tmp_path, shape, task, says
):
    model = tiny_bert if shape == "bert" else tiny_shape(shape)
    with pytest.raises(TrainingError) as raised:
        run(spec_for(model, sentiment_pairs, tmp_path / "out", task=task), ListSink())
    assert raised.value.kind == BAD_PARAMS and says in raised.value.message


def test_missing_columns_and_unknown_templates_are_refused(tiny_shape, sentiment_pairs, tmp_path):
    model = tiny_shape("llama")
    with pytest.raises(TrainingError, match="missing: label_column .or, for SFT, messages_column."):
        run(spec_for(model, sentiment_pairs, tmp_path / "a", task="sft", label_column=None), ListSink())
    with pytest.raises(TrainingError, match="unknown template 'vicuna'"):
        run(spec_for(model, sentiment_pairs, tmp_path / "b", task="sft", template="vicuna"), ListSink())
    with pytest.raises(TrainingError) as raised:
        run(spec_for(model, sentiment_pairs, tmp_path / "c", task="sft", label_column="reply"), ListSink())
    assert raised.value.kind == BAD_DATA and "reply" in raised.value.message
