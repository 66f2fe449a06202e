"""A task per group (peftcore/task_routing.py): with a group column, Poly and multitask prompt tuning train one
adapter whose tasks are the groups. Rows reach the model with their group's task id, so two groups that disagree
on the same text each get their own answer (one adapter for all rows cannot: it sees the same text both ways);
the adapter saves its task ids and reloads in plain peft with the trained outputs; each group's predictor answers
as its task; the report scores each group; and bad group values are refused with the rows named."""

import csv
import json

import pytest
import torch
from peft import PeftModel

from peftcore.artifacts import read_labels
from peftcore.errors import TrainingError
from peftcore.events import ListSink
from peftcore.groups import load_group_predictor
from peftcore.predict import predict
from peftcore.task_routing import TASKS_FILE
from peftcore.tasks import load_tokenizer
from peftcore.tasks.text_classification import collate, encode, load_model
from peftcore.train import run
from tests.peftcore.conftest import make_spec
from tests.tiny_models import make_review_answer_file

# the groups disagree on "sick": ann's rows call it praise, bo's do not
PROBE = ["sick film number 3", "sick film number 17"]
FAST = {"epochs": 8, "batch_size": 8, "learning_rate": 5e-2, "max_length": 16, "baseline_eval": True}


def _grouped(path, *, users=("ann", "bo"), rows=30, blank_row=False):
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["sentence", "label", "user"])
        for i in range(rows):
            writer.writerow([f"sick film number {i}", "1", users[0]])
            writer.writerow([f"dull film number {i}", "0", users[0]])
            writer.writerow([f"sick film number {i}", "0", users[1]])
            writer.writerow([f"great film number {i}", "1", users[1]])
        if blank_row:
            writer.writerow(["fine film", "1", ""])
    return path


def _spec(model, data, out, method, **params):
    return make_spec(model, data, out, method=method, params={**FAST, **params}, group_column="user")


@pytest.mark.parametrize(
    "method, method_params",
    [("poly", {}), ("multitask_prompt_tuning", {"num_virtual_tokens": 4})],
)
def test_one_adapter_learns_each_groups_own_answer(bert_without_dropout, tmp_path, method, method_params):
    data = _grouped(tmp_path / "grouped.csv")
    spec = _spec(
        bert_without_dropout, data, tmp_path / "out", method, **({"learning_rate": 3e-2} if method_params else {})
    )
    spec["method_params"] = method_params
    done = run(spec, ListSink())
    report = done["report"]
    assert report["task_per_group"] and [g["group"] for g in report["groups"]] == ["ann", "bo"]
    for group in report["groups"]:
        assert group["eval_rows"] > 0 and group["train_rows"] > 0
        assert group["gain"]["accuracy"] == pytest.approx(group["metrics"]["accuracy"] - group["before"]["accuracy"])
    folder = tmp_path / "out" / "adapter"
    assert json.loads((folder / TASKS_FILE).read_text())["tasks"] == {"ann": 0, "bo": 1}
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config.get("n_tasks", config.get("num_tasks")) == 2
    # the same text, two answers: each group's predictor routes to its task
    ann = predict(load_group_predictor(bert_without_dropout, folder, "ann"), PROBE)
    bo = predict(load_group_predictor(bert_without_dropout, folder, "bo"), PROBE)
    assert [a["label"] for a in ann] == ["1", "1"] and [b["label"] for b in bo] == ["0", "0"]
    with pytest.raises(KeyError, match="no task for the group 'cy'"):
        load_group_predictor(bert_without_dropout, folder, "cy")
    # plain peft, given each row's task id, answers as the studio's predictors do
    tokenizer = load_tokenizer(bert_without_dropout)
    batch = collate(encode(tokenizer, PROBE * 2, 16), tokenizer.pad_token_id)
    labels = read_labels(folder)
    fresh, _ = load_model(bert_without_dropout, labels, tokenizer.pad_token_id)
    plain = PeftModel.from_pretrained(fresh, str(folder)).eval()
    with torch.no_grad():
        logits = plain(**batch, task_ids=torch.tensor([0, 0, 1, 1])).logits
    probabilities = torch.softmax(logits, dim=-1)
    for row, answer in enumerate(ann + bo):
        expected = [answer["probabilities"][label] for label in labels]
        torch.testing.assert_close(probabilities[row].tolist(), expected, atol=1e-5, rtol=1e-4)


def test_one_adapter_for_all_rows_cannot_tell_the_groups_apart(bert_without_dropout, tmp_path):
    """The control: LoRA with the same group column trains one adapter per group, and Poly without one sees
    "sick" both ways, so its answer is the same for both groups."""
    data = _grouped(tmp_path / "grouped.csv")
    spec = make_spec(bert_without_dropout, data, tmp_path / "out", method="poly", params=FAST)
    run(spec, ListSink())
    folder = tmp_path / "out" / "adapter"
    assert not (folder / TASKS_FILE).exists()
    from peftcore.predict import load_predictor

    answers = predict(load_predictor(bert_without_dropout, folder), PROBE)
    assert len({a["label"] for a in answers}) == 1


def test_rows_without_a_group_are_named(bert_without_dropout, tmp_path):
    data = _grouped(tmp_path / "grouped.csv", blank_row=True)
    with pytest.raises(TrainingError, match=r"1 row\(s\) of the training file have no 'user' \(rows 122\)"):
        run(_spec(bert_without_dropout, data, tmp_path / "out", "poly"), ListSink())


def test_an_evaluation_group_without_training_rows_is_refused(bert_without_dropout, tmp_path):
    data = _grouped(tmp_path / "grouped.csv")
    evaluation = _grouped(tmp_path / "eval.csv", users=("ann", "dee"), rows=3)
    spec = _spec(bert_without_dropout, data, tmp_path / "out", "poly")
    spec.update(eval_file=str(evaluation), eval_format="csv")
    with pytest.raises(TrainingError, match="'user' value\\(s\\) 'dee', which the training file lacks"):
        run(spec, ListSink())


@pytest.mark.parametrize(
    "task_overrides, words",
    [
        ({"group_shared": True}, "turn off the shared adapter"),
        (
            {"task": "preference", "input_column": "rejected"},
            "Poly takes a task per group for text classification and SFT; for this task, pick another method",
        ),
    ],
)
def test_what_a_task_per_group_cannot_do_is_refused(bert_without_dropout, tmp_path, task_overrides, words):
    spec = {**_spec(bert_without_dropout, _grouped(tmp_path / "g.csv"), tmp_path / "out", "poly"), **task_overrides}
    with pytest.raises(TrainingError, match=words):
        run(spec, ListSink())


def _contrary_answers(path, rows=64):
    """SFT rows whose answer depends on the writer: ann states the review's sentiment, bo its opposite."""
    lines = []
    for record in map(json.loads, make_review_answer_file(path.with_suffix(".plain"), rows).read_text().splitlines()):
        for user in ("ann", "bo"):
            flipped = {"positive": "negative", "negative": "positive"}[record["answer"]]
            lines.append({**record, "answer": record["answer"] if user == "ann" else flipped, "user": user})
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "method, method_params", [("poly", {}), ("multitask_prompt_tuning", {"num_virtual_tokens": 4})]
)
def test_sft_routes_each_writer_to_its_task_and_plain_peft_agrees(tiny_shape, tmp_path, method, method_params):
    folder = tiny_shape("llama")
    spec = {
        "task": "sft",
        "model_path": str(folder),
        "method": method,
        "method_params": method_params,
        "train_file": str(_contrary_answers(tmp_path / "pairs.jsonl")),
        "text_column": "review",
        "label_column": "answer",
        "group_column": "user",
        "output_dir": str(tmp_path / "out"),
        "params": {"epochs": 3, "batch_size": 8, "max_length": 48, "learning_rate": 1e-2},
    }
    report = run(spec, ListSink())["report"]
    assert [g["group"] for g in report["groups"]] == ["ann", "bo"]
    for group in report["groups"]:
        assert group["metrics"]["eval_loss"] < group["before"]["eval_loss"]
    assert report["samples"]  # the final evaluation generated, each row as its own task
    adapter = tmp_path / "out" / "adapter"
    tokenizer = load_tokenizer(adapter)
    prompt = "the film was"
    ids = tokenizer([prompt, prompt], return_tensors="pt")
    from transformers import AutoModelForCausalLM

    plain = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(folder)), str(adapter)).eval()
    with torch.no_grad():
        both = plain(**ids, task_ids=torch.tensor([0, 1])).logits
    assert not torch.allclose(both[0], both[1])  # the two tasks differ on the same text
    for task, group in enumerate(("ann", "bo")):
        predictor = load_group_predictor(folder, adapter, group)
        with torch.no_grad():
            routed = predictor.model(**{k: v[:1] for k, v in ids.items()}).logits
        torch.testing.assert_close(routed[0, -ids["input_ids"].shape[1] :], both[task, -ids["input_ids"].shape[1] :])
        assert predict(predictor, [prompt], max_new_tokens=3)[0]["generation"] is not None


def test_a_task_per_group_resumes_exactly(tiny_bert, tmp_path):
    """The tasks are added before a checkpoint is restored, so the routers' rows are there to take it."""
    from tests.peftcore.test_checkpoints import SMALL, assert_resumes_exactly

    data = _grouped(tmp_path / "grouped.csv")

    def make(out, **overrides):
        return make_spec(tiny_bert, data, out, method="poly", params=SMALL, group_column="user", **overrides)

    reference = assert_resumes_exactly(make, tmp_path)
    assert reference.done["report"]["task_per_group"]


@pytest.mark.parametrize("grouped", [True, False])
def test_the_model_cards_code_routes_each_row_by_its_task(bert_without_dropout, tmp_path, grouped):
    """Plain peft needs a task id for Poly; the card's code passes the one task (0) or, for a task per group, the
    first group's id from tasks.json, and answers as the studio's predictor for that group does."""
    from peftcore.predict import load_predictor

    data = _grouped(tmp_path / "grouped.csv")
    spec = _spec(bert_without_dropout, data, tmp_path / "out", "poly", epochs=2)
    if not grouped:
        del spec["group_column"]
    run(spec, ListSink())
    folder = tmp_path / "out" / "adapter"
    card = (folder / "README.md").read_text(encoding="utf-8")
    code = card.split("```python\n")[1].split("```")[0]
    code = code.replace('"path/to/this/adapter"', repr(str(folder)))
    code = code.replace('"path/to/tiny-bert"', repr(str(bert_without_dropout)))
    code = code.replace('texts = ["an example text to classify"]', f"texts = {PROBE!r}")
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # the card's own code, as a user runs it
    predictor = load_group_predictor(bert_without_dropout, folder, "ann") if grouped else None
    predictor = predictor or load_predictor(bert_without_dropout, folder)
    with torch.no_grad():
        logits = scope["model"](**scope["inputs"]).logits
    expected = [[a["probabilities"][label] for label in scope["labels"]] for a in predict(predictor, PROBE)]
    torch.testing.assert_close(torch.softmax(logits, dim=-1).tolist(), expected, atol=1e-5, rtol=1e-4)


def test_the_train_command_takes_a_group_column(tiny_bert, tmp_path):
    from tests.peftcore.test_cli import events_of, run_cli

    data = _grouped(tmp_path / "grouped.csv", rows=10)
    result = run_cli(
        *("train", "--data", str(data), "--text-column", "sentence", "--label-column", "label"),
        *("--model", f"local:{tiny_bert.name}", "--model-root", str(tiny_bert.parent), "--method", "poly"),
        *("--group-column", "user", "--param", "epochs=1", "--out", str(tmp_path / "out")),
    )
    assert result.returncode == 0, result.stderr
    report = events_of(result.stdout)[-1]["report"]
    assert report["task_per_group"] and [g["group"] for g in report["groups"]] == ["ann", "bo"]


@pytest.mark.parametrize("checkpointing", [False, True])
def test_poly_routes_the_recomputed_forward_of_activation_checkpointing(tiny_shape, checkpointing):
    """peft hands Poly its task ids through hooks that are gone when checkpointing recomputes a block in the
    backward pass: the gradient must still reach the rows' own task, not task 0."""
    from transformers import AutoModelForCausalLM

    from peftcore.methods import get_method
    from peftcore.schema import validate_params
    from peftcore.train import _checkpoint_activations

    method = get_method("poly")
    params, errors = validate_params(method.params, {})
    assert not errors
    model = method.build(AutoModelForCausalLM.from_pretrained(str(tiny_shape("llama"))), params, "sft")
    method.expand_tasks(model, 2)
    with torch.no_grad():  # an update that is not zero, so the router's mix matters to the loss
        for name, parameter in model.named_parameters():
            if "poly_lora_B" in name:
                parameter.normal_(0, 0.1)
    if checkpointing:
        _checkpoint_activations(model)
    model.train()
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    model(input_ids=ids, labels=ids, task_ids=torch.tensor([1, 1])).loss.backward()
    grads = [
        parameter.grad
        for name, parameter in model.named_parameters()
        if "module_logits" in name and parameter.grad is not None
    ]
    assert grads and all(g[0].abs().sum() == 0 for g in grads) and any(g[1].abs().sum() > 0 for g in grads)
