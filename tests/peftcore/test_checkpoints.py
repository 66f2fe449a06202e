"""Checkpoints, exact resume, micro-batches and preemption (peftcore/checkpoints.py, loop.py and train.py).

The headline: a run resumed from a checkpoint ends with bit-identical weights and identical per-step losses to
the run that never stopped, for every registered method (with dropout on, mid-epoch and at an epoch end).
One file over 400 lines because every test here shares the same uninterrupted reference runs (module fixtures):
split, each file would train them again."""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch

from peftcore.cli import _WholeLines, build_parser
from peftcore.errors import BAD_PARAMS, INTERNAL, OUT_OF_MEMORY, StopSignal, TrainingError, is_out_of_memory
from peftcore.events import ListSink
from peftcore.train import fit, run
from tests.peftcore.test_method_matrix import CASES, IDS
from tests.tiny_models import make_review_answer_file

from .conftest import REPO_ROOT, make_spec

# 12 rows: 11 train in batches of 4 (4, 4, 3) -> 3 steps an epoch, 9 in all. A checkpoint every 2 steps gives one
# mid-epoch (2) and one at an epoch end (6); neither at the last step (9).
SMALL = {"epochs": 3, "batch_size": 4, "max_rows": 12, "max_length": 32, "eval_fraction": 0.1, "patience": 0}
MID_EPOCH, EPOCH_END = 2, 6
CHECKPOINT_FILES = {"state.json", "trainable.safetensors", "optimizer.safetensors", "rng.safetensors"}


def trained_weights(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def losses(sink: ListSink) -> list[float]:
    return [e["loss"] for e in sink.of("progress")]


def train(spec) -> tuple:
    sink = ListSink()
    return fit(spec, sink), sink


def assert_resumes_exactly(make, tmp_path):
    """make(out, **spec overrides) -> spec. Train once with checkpoints, then from a mid-epoch and an epoch-end
    checkpoint: each resumed run must end exactly where the uninterrupted one did."""
    reference, sink = train(make(tmp_path / "reference", checkpoint_every_steps=2))
    assert [e["step"] for e in sink.of("checkpoint")] == [2, 4, 6, 8]
    expected = trained_weights(reference.model)
    for step in (MID_EPOCH, EPOCH_END):
        resumed, resumed_sink = train(
            make(tmp_path / f"from-{step}", resume_from=str(tmp_path / "reference" / "checkpoints" / f"step-{step}"))
        )
        kinds = [e["event"] for e in resumed_sink.events]
        assert kinds[:2] == ["start", "resumed"]  # no new baseline evaluation
        assert resumed_sink.of("resumed")[0]["step"] == step
        assert [e["step"] for e in resumed_sink.of("progress")] == list(range(step + 1, 10))
        assert losses(resumed_sink) == losses(sink)[step:]
        actual = trained_weights(resumed.model)
        assert actual.keys() == expected.keys()
        unequal = [name for name in expected if not torch.equal(actual[name], expected[name])]
        assert not unequal, f"resumed from step {step}: {unequal[:5]}"
        done, report = resumed.done, resumed.done["report"]
        assert done["metrics"] == reference.done["metrics"]
        assert report.get("samples") == reference.done["report"].get("samples")  # with the baseline's generations
        assert report["baseline_metrics"] == reference.done["report"]["baseline_metrics"]
        assert report["resumed_from_step"] == step and reference.done["report"]["resumed_from_step"] is None
        assert report["efficiency"]["train_tokens"] == reference.done["report"]["efficiency"]["train_tokens"]
        assert report["train_seconds"] > 0
    return reference


@pytest.mark.parametrize("name, params", CASES, ids=IDS)
def test_every_method_resumes_exactly(tiny_bert, sentiment_tsv, tmp_path, name, params):
    # Dropout is on throughout (BERT's own 0.1, and the methods' defaults), so the RNG states must come back too;
    # AdaLoRA (9 steps: warm-up 0, reallocation 1-6, final masking 7-8) needs its rank allocator's scores.
    def make(out, **overrides):
        return make_spec(tiny_bert, sentiment_tsv, out, method=name, method_params=params, params=SMALL, **overrides)

    assert_resumes_exactly(make, tmp_path)


@pytest.fixture(scope="module")
def answer_pairs(tmp_path_factory):
    return make_review_answer_file(tmp_path_factory.mktemp("data") / "pairs.jsonl")


def generation_spec(model, data, out, *, task, method="lora", method_params=None, params=None, **overrides):
    return {
        "task": task,
        "model_path": str(model),
        "method": method,
        "method_params": method_params or {},
        "train_file": str(data),
        "text_column": "review",
        "label_column": "answer",
        "output_dir": str(out),
        "params": params or dict(SMALL, max_length=48),
        "metadata": {"base_model": "local:tiny"},
        **overrides,
    }


@pytest.mark.parametrize("shape, task", [("gpt2", "sft"), ("llama", "sft"), ("t5", "seq2seq")])
def test_lora_on_generation_tasks_resumes_exactly(tiny_shape, answer_pairs, tmp_path, shape, task):
    def make(out, **overrides):
        return generation_spec(tiny_shape(shape), answer_pairs, out, task=task, **overrides)

    reference = assert_resumes_exactly(make, tmp_path)
    assert all(sample["baseline_generation"] is not None for sample in reference.done["report"]["samples"])


def test_a_checkpoint_folder_holds_safetensors_and_json_only(tiny_bert, sentiment_tsv, tmp_path):
    spec = make_spec(
        tiny_bert,
        sentiment_tsv,
        tmp_path / "out",
        method="adalora",
        params=SMALL,
        checkpoint_dir=str(tmp_path / "ckpt"),
        checkpoint_every_steps=4,
    )
    result, sink = train(spec)
    event = sink.of("checkpoint")[0]
    folder = tmp_path / "ckpt" / "step-4"
    assert event == {"event": "checkpoint", "step": 4, "epoch": round(4 / 3, 4), "path": str(folder.resolve())}
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["step-4", "step-8"]  # no partial folder left
    # AdaLoRA keeps its last weights (its rank schedule reshapes the adapter), so no best weights beside them
    assert {p.name for p in folder.iterdir()} == CHECKPOINT_FILES
    # state.json is strict JSON; every other file is safetensors (a JSON header, then raw tensor bytes).
    state = json.loads((folder / "state.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert state["format_version"] == 1 and state["step"] == 4 and state["epoch"] == round(4 / 3, 4)
    assert (state["current_epoch"], state["position"], len(state["order"])) == (2, 1, 11)
    assert state["fingerprint"]["params"]["learning_rate"] == result.done["report"]["params"]["learning_rate"]
    assert state["baseline"]["metrics"] == sink.of("eval")[0]["metrics"]
    from safetensors import safe_open

    with safe_open(str(folder / "trainable.safetensors"), "pt") as fh:
        keys = set(fh.keys())
    assert {n for n in keys if not n.startswith("adalora/")} == set(trained_weights(result.model))
    assert any(n.startswith("adalora/exp_avg_ipt/") for n in keys)
    with safe_open(str(folder / "rng.safetensors"), "pt") as fh:
        assert {"torch", "data_order"} <= set(fh.keys())
    with safe_open(str(folder / "optimizer.safetensors"), "pt") as fh:
        assert all(k.endswith(("/exp_avg", "/exp_avg_sq")) for k in fh.keys())


def test_checkpoints_are_never_at_step_0_twice_or_after_the_last_step(tiny_bert, sentiment_tsv, tmp_path):
    _, sink = train(
        make_spec(
            tiny_bert,
            sentiment_tsv,
            tmp_path / "a",
            params=SMALL,
            checkpoint_every_steps=1,
            checkpoint_every_seconds=1e-6,
        )
    )
    assert [e["step"] for e in sink.of("checkpoint")] == list(range(1, 9))
    kinds = [e["event"] for e in sink.events]
    assert kinds.index("checkpoint") == kinds.index("progress") + 1  # right after its optimizer step
    _, sink = train(make_spec(tiny_bert, sentiment_tsv, tmp_path / "b", params=SMALL))
    assert sink.of("checkpoint") == [] and not (tmp_path / "b" / "checkpoints").exists()


def assert_close(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-4, atol=1e-6, msg=name)


def test_a_checkpoint_past_the_best_evaluation_keeps_its_weights_and_resuming_ends_on_them(
    tiny_bert, sentiment_tsv, tmp_path
):
    params = {**SMALL, "epochs": 4, "learning_rate": 0.3}  # a rate that makes later epochs worse
    spec = make_spec(tiny_bert, sentiment_tsv, tmp_path / "out", params=params, checkpoint_every_steps=1)
    reference, sink = train(spec)
    best = reference.done["report"]["best"]
    evals = {e["step"]: e["metrics"] for e in sink.of("eval") if e["epoch"]}
    assert max(evals) > best["step"], "every epoch improved: nothing to test (raise the learning rate)"
    # the checkpoint of the step after the best evaluation: written once the model moved past it
    folder = tmp_path / "out" / "checkpoints" / f"step-{best['step'] + 1}"
    assert (folder / "best.safetensors").is_file()
    resumed, _ = train(make_spec(tiny_bert, sentiment_tsv, tmp_path / "again", params=params, resume_from=str(folder)))
    assert resumed.done["report"]["best"] == best
    assert resumed.done["metrics"] == reference.done["metrics"]
    assert_close(trained_weights(resumed.model), trained_weights(reference.model))


@pytest.mark.parametrize("micro", [2, 3])
def test_micro_batches_train_as_the_whole_batch_classification(bert_without_dropout, sentiment_tsv, tmp_path, micro):
    params = {"epochs": 2, "batch_size": 8, "max_rows": 24, "max_length": 32, "learning_rate": 1e-2}

    def spec(out, **overrides):
        return make_spec(
            bert_without_dropout,
            sentiment_tsv,
            out,
            # query and value only: Adam's updates of the feed-forward layers' near-zero gradients magnify the
            # summation-order noise of micro-batches past any tolerance, without saying anything about batching
            method_params={"lora_dropout": 0.0, "placement": "usual"},
            params=params,
            **overrides,
        )

    whole, whole_sink = train(spec(tmp_path / "whole"))
    split, split_sink = train(spec(tmp_path / "split", micro_batch_size=micro))
    assert whole_sink.events[0]["micro_batch_size"] == 8 and split_sink.events[0]["micro_batch_size"] == micro
    assert len(split_sink.of("progress")) == len(whole_sink.of("progress")) == 6  # one event per optimizer step
    assert losses(split_sink) == pytest.approx(losses(whole_sink), rel=1e-5)
    assert_close(trained_weights(split.model), trained_weights(whole.model))
    assert split.done["report"]["micro_batch_size"] == micro
    assert split.done["report"]["efficiency"]["train_tokens"] == whole.done["report"]["efficiency"]["train_tokens"]


@pytest.mark.parametrize("micro", [2, 3])
def test_micro_batches_train_as_the_whole_batch_sft(tiny_shape, tmp_path, micro):
    # Answers of 1 to 4 words: a chunk's share is its labelled tokens over the whole batch's, not its rows.
    data = tmp_path / "answers.jsonl"
    data.write_text(
        "".join(
            json.dumps({"review": f"review number {i}", "answer": " ".join(["good"] * (i % 4 + 1))}) + "\n"
            for i in range(28)
        )
    )
    params = {"epochs": 1, "batch_size": 8, "max_length": 48, "learning_rate": 1e-2}

    def spec(out, **overrides):
        return generation_spec(
            tiny_shape("llama"), data, out, task="sft", params=params, method_params={"lora_dropout": 0.0}, **overrides
        )

    whole, whole_sink = train(spec(tmp_path / "whole"))
    split, split_sink = train(spec(tmp_path / "split", micro_batch_size=micro))
    assert losses(split_sink) == pytest.approx(losses(whole_sink), rel=1e-5)
    assert_close(trained_weights(split.model), trained_weights(whole.model))


def test_resuming_with_another_micro_batch_size_continues_the_same_training(
    bert_without_dropout, sentiment_tsv, tmp_path
):
    def spec(out, **overrides):
        return make_spec(
            bert_without_dropout, sentiment_tsv, out, method_params={"lora_dropout": 0.0}, params=SMALL, **overrides
        )

    reference, sink = train(spec(tmp_path / "reference", checkpoint_every_steps=2))
    resumed, resumed_sink = train(
        spec(
            tmp_path / "resumed", micro_batch_size=2, resume_from=str(tmp_path / "reference" / "checkpoints" / "step-4")
        )
    )
    assert resumed_sink.of("resumed")[0]["step"] == 4
    assert losses(resumed_sink) == pytest.approx(losses(sink)[4:], rel=1e-5)
    assert_close(trained_weights(resumed.model), trained_weights(reference.model))
    report = resumed.done["report"]
    assert (report["micro_batch_size"], report["resumed_from_step"]) == (2, 4)


def test_resuming_with_another_learning_rate_is_refused(tiny_bert, sentiment_tsv, tmp_path):
    _, sink = train(make_spec(tiny_bert, sentiment_tsv, tmp_path / "a", params=SMALL, checkpoint_every_steps=2))
    folder = sink.of("checkpoint")[0]["path"]
    sink = ListSink()
    with pytest.raises(TrainingError) as raised:
        run(
            make_spec(
                tiny_bert, sentiment_tsv, tmp_path / "b", params=dict(SMALL, learning_rate=0.5), resume_from=folder
            ),
            sink,
        )
    assert raised.value.kind == BAD_PARAMS
    assert f"the checkpoint {folder} belongs to a different configuration" in raised.value.message
    assert "params.learning_rate (checkpoint 0.001, this job 0.5)" in raised.value.message
    assert [e["event"] for e in sink.events] == ["error"]  # refused before anything was loaded


def test_a_missing_or_damaged_checkpoint_is_refused_clearly(tiny_bert, sentiment_tsv, tmp_path):
    _, sink = train(make_spec(tiny_bert, sentiment_tsv, tmp_path / "a", params=SMALL, checkpoint_every_steps=2))
    good = tmp_path / "a" / "checkpoints" / "step-2"

    def failure(folder):
        with pytest.raises(TrainingError) as raised:
            fit(make_spec(tiny_bert, sentiment_tsv, tmp_path / "b", params=SMALL, resume_from=str(folder)), ListSink())
        return raised.value

    error = failure(tmp_path / "nowhere")
    assert error.kind == BAD_PARAMS and "does not exist" in error.message
    error = failure(tmp_path / "a" / "checkpoints")
    assert error.kind == BAD_PARAMS and "is not a checkpoint folder" in error.message
    for name, damage in [
        ("state.json", b"{not json"),
        ("trainable.safetensors", b"\x00" * 16),
        ("rng.safetensors", None),
    ]:
        broken = tmp_path / f"broken-{name}"
        shutil.copytree(good, broken)
        if damage is None:
            (broken / name).unlink()
        else:
            (broken / name).write_bytes(damage)
        error = failure(broken)
        assert error.kind == INTERNAL and f"the checkpoint {broken} is damaged" in error.message, error.message


@pytest.mark.parametrize(
    "key, value",
    [
        ("checkpoint_every_steps", 0),
        ("checkpoint_every_steps", 1.5),
        ("checkpoint_every_steps", True),
        ("checkpoint_every_seconds", 0),
        ("checkpoint_every_seconds", "60"),
        ("micro_batch_size", 0),
        ("micro_batch_size", "2"),
        ("resume_from", 3),
        ("checkpoint_dir", ["x"]),
    ],
)
def test_bad_checkpoint_settings_are_refused(tiny_bert, sentiment_tsv, tmp_path, key, value):
    with pytest.raises(TrainingError) as raised:
        fit(make_spec(tiny_bert, sentiment_tsv, tmp_path, **{key: value}), ListSink())
    assert raised.value.kind == BAD_PARAMS and raised.value.message.startswith(key)


class StopAfter(ListSink):
    """Events in memory, and a should_stop() that turns true once step `step` has been reported."""

    def __init__(self, step: int):
        super().__init__()
        self.step = step

    def __call__(self) -> bool:
        return any(e["step"] >= self.step for e in self.of("progress"))


@pytest.mark.parametrize("every", [None, 3])
def test_a_stop_request_checkpoints_the_step_and_ends_without_an_adapter(tiny_bert, sentiment_tsv, tmp_path, every):
    sink = StopAfter(3)
    spec = make_spec(tiny_bert, sentiment_tsv, tmp_path / "out", params=SMALL, checkpoint_every_steps=every)
    result = fit(spec, sink, should_stop=sink)
    kinds = [e["event"] for e in sink.events]
    assert kinds[-3:] == ["progress", "checkpoint", "preempted"]  # step 3 ends epoch 1; its eval comes on resume
    assert kinds.count("checkpoint") == 1  # not a second one when one was just written for that step
    assert result.preempted == sink.events[-1] == {"event": "preempted", "step": 3}
    assert result.done is None and result.adapter_dir is None and not (tmp_path / "out" / "adapter").exists()
    # ... and the run goes on from there to the very same end.
    resumed, resumed_sink = train(dict(spec, resume_from=sink.of("checkpoint")[0]["path"]))
    reference, reference_sink = train(make_spec(tiny_bert, sentiment_tsv, tmp_path / "ref", params=SMALL))
    assert losses(sink) + losses(resumed_sink) == losses(reference_sink)
    assert all(
        torch.equal(a, b)
        for a, b in zip(trained_weights(resumed.model).values(), trained_weights(reference.model).values())
    )


def test_a_stop_before_training_starts_ends_at_once_without_a_checkpoint(tiny_bert, sentiment_tsv, tmp_path):
    stop = StopSignal()

    class StopOnStart(ListSink):  # SIGTERM while the baseline is evaluated
        def emit(self, event):
            super().emit(event)
            if event["event"] == "start":
                stop.request()

    sink = StopOnStart()
    result = run(
        make_spec(tiny_bert, sentiment_tsv, tmp_path / "out", params=SMALL, checkpoint_every_steps=1),
        _WholeLines(sink, stop),
        should_stop=stop,
    )
    assert [e["event"] for e in sink.events] == ["start", "preempted"]
    assert result == {"event": "preempted", "step": 0}
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.safetensors"))
    # A plain callable is read between phases: already true, nothing is even loaded.
    sink = ListSink()
    assert fit(make_spec(tiny_bert, sentiment_tsv, tmp_path / "b"), sink, should_stop=lambda: True).preempted
    assert [e["event"] for e in sink.events] == ["preempted"]


def test_a_stop_before_a_resumed_run_starts_reports_the_checkpoint_step(tiny_bert, sentiment_tsv, tmp_path):
    _, sink = train(make_spec(tiny_bert, sentiment_tsv, tmp_path / "a", params=SMALL, checkpoint_every_steps=4))
    stop = StopSignal()
    stop.request()  # before fit(): only remembered, then honoured as fit() starts
    sink = ListSink()
    spec = make_spec(
        tiny_bert,
        sentiment_tsv,
        tmp_path / "b",
        params=SMALL,
        resume_from=str(tmp_path / "a" / "checkpoints" / "step-4"),
    )
    assert fit(spec, sink, should_stop=stop).preempted == {"event": "preempted", "step": 4}
    assert [e["event"] for e in sink.events] == ["preempted"]


def test_injected_out_of_memory_names_the_micro_batch_size(tiny_bert, sentiment_tsv, tmp_path, monkeypatch):
    monkeypatch.setenv("PEFTCORE_FAULT_OOM_ABOVE", "2")
    sink = ListSink()
    with pytest.raises(TrainingError) as raised:
        run(make_spec(tiny_bert, sentiment_tsv, tmp_path / "a", params=SMALL), sink)
    assert raised.value.kind == OUT_OF_MEMORY and is_out_of_memory(raised.value.__cause__)
    assert "injected" in str(raised.value.__cause__) and isinstance(raised.value.__cause__, torch.OutOfMemoryError)
    assert sink.events[-1]["micro_batch_size"] == 4 and sink.events[-1]["kind"] == OUT_OF_MEMORY
    assert "micro-batches of 4 rows" in sink.events[-1]["message"]
    done = run(make_spec(tiny_bert, sentiment_tsv, tmp_path / "b", params=SMALL, micro_batch_size=2), ListSink())
    assert done["event"] == "done" and done["report"]["micro_batch_size"] == 2


def test_the_train_command_takes_resume_and_micro_batch_size(capsys):
    args = build_parser().parse_args(["train", "--spec", "s.json", "--resume", "ck/step-4", "--micro-batch-size", "2"])
    assert (args.resume, args.micro_batch_size) == ("ck/step-4", 2)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    assert "--resume CHECKPOINT_DIR" in capsys.readouterr().out


def test_sigterm_checkpoints_and_exits_0_then_resume_finishes(tiny_bert, sentiment_tsv, tmp_path):
    params = {"epochs": 30, "batch_size": 8, "max_length": 32, "eval_fraction": 0.1, "patience": 0}
    spec = make_spec(tiny_bert, sentiment_tsv, tmp_path / "out", params=params, threads=1)
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    command = [sys.executable, "-m", "peftcore", "train", "--spec", str(tmp_path / "spec.json")]
    child = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    events = []
    for line in child.stdout:
        events.append(json.loads(line))
        if events[-1]["event"] == "progress":
            child.send_signal(signal.SIGTERM)
            break
    events += [json.loads(line) for line in child.stdout]
    events = [e for e in events if e["event"] != "phase"]  # the job page's narration, not the protocol
    assert child.wait(timeout=120) == 0
    checkpoint, preempted = events[-2:]
    assert checkpoint["event"] == "checkpoint" and preempted == {"event": "preempted", "step": checkpoint["step"]}
    assert checkpoint["step"] < 240 and not (tmp_path / "out" / "adapter").exists()

    result = subprocess.run(
        command + ["--resume", checkpoint["path"]], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    events = [e for e in map(json.loads, result.stdout.splitlines()) if e["event"] != "phase"]
    assert [e["event"] for e in events[:2]] == ["start", "resumed"] and events[1]["step"] == checkpoint["step"]
    assert events[-1]["event"] == "done" and events[-1]["report"]["resumed_from_step"] == checkpoint["step"]
    assert events[2]["event"] in ("progress", "eval") and sum(e["event"] == "progress" for e in events) == (
        240 - checkpoint["step"]
    )
