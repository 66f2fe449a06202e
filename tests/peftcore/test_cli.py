"""The CLI as the runner uses it: a child process whose stdout carries only JSON events."""

import json
import os
import subprocess
import sys

from .conftest import REPO_ROOT, make_spec


def run_cli(*args, timeout=180):
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    return subprocess.run(
        [sys.executable, "-m", "peftcore", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def events_of(stdout):
    lines = stdout.splitlines()
    assert lines, "no events on stdout"
    return [json.loads(line) for line in lines]  # every line must be JSON


def test_train_spec_prints_only_json_events(tiny_bert, sentiment_tsv, tmp_path):
    params = {"epochs": 2, "batch_size": 16, "eval_fraction": 0.1, "patience": 0}
    spec = make_spec(tiny_bert, sentiment_tsv, tmp_path / "out", params=params, threads=1)
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    result = run_cli("train", "--spec", str(tmp_path / "spec.json"))
    assert result.returncode == 0, result.stderr
    printed = events_of(result.stdout)
    phases = [e["phase"] for e in printed if e["event"] == "phase"]  # what the run is doing, for the job page
    assert phases[:2] == ["reading the data", "loading the model on the CPU"] and phases[-1] == "saving the adapter"
    events = [e for e in printed if e["event"] != "phase"]
    assert events[0]["event"] == "start" and events[-1]["event"] == "done"
    assert [e["event"] for e in events].count("progress") == events[0]["total_steps"] == 8
    adapter = tmp_path / "out" / "adapter"
    assert events[-1]["adapter_dir"] == str(adapter)
    for name in (
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "labels.json",
        "README.md",
    ):
        assert (adapter / name).is_file(), name


def test_train_spec_with_a_missing_column_exits_2(tiny_bert, sentiment_tsv, tmp_path):
    spec = make_spec(tiny_bert, sentiment_tsv, tmp_path / "out", label_column="sentiment")
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    result = run_cli("train", "--spec", str(tmp_path / "spec.json"))
    assert result.returncode == 2, result.stderr
    events = events_of(result.stdout)
    assert events[-1]["event"] == "error" and events[-1]["kind"] == "bad_data"
    assert "column 'sentiment' not found" in events[-1]["message"]
    assert not (tmp_path / "out" / "adapter").exists()


def test_unreadable_spec_exits_2_with_an_error_event(tmp_path):
    (tmp_path / "spec.json").write_text("{not json")
    result = run_cli("train", "--spec", str(tmp_path / "spec.json"))
    assert result.returncode == 2
    assert events_of(result.stdout) == [
        {"event": "error", "kind": "bad_params", "message": events_of(result.stdout)[0]["message"]}
    ]
    assert "cannot read the job spec" in events_of(result.stdout)[0]["message"]


def test_train_from_flags_with_a_local_model(tiny_bert, sentiment_tsv, tmp_path):
    result = run_cli(
        "train",
        "--data",
        str(sentiment_tsv),
        "--text-column",
        "sentence",
        "--label-column",
        "label",
        "--model",
        f"local:{tiny_bert.name}",
        "--model-root",
        str(tiny_bert.parent),
        "--method",
        "ia3",
        "--param",
        "epochs=1",
        "--param",
        "batch_size=32",
        "--param",
        "target_modules=value",
        "--out",
        str(tmp_path / "out"),
    )
    assert result.returncode == 0, result.stderr
    events = events_of(result.stdout)
    assert events[-1]["event"] == "done"
    assert events[-1]["report"]["method_params"]["target_modules"] == "value"
    assert "training" in result.stderr and "adapter saved to" in result.stderr  # the progress bar
    card = (tmp_path / "out" / "adapter" / "README.md").read_text()
    assert "sha256 `" in card and "train.tsv" in card


def test_unknown_param_flag_exits_2(sentiment_tsv, tmp_path):
    result = run_cli(
        "train",
        "--data",
        str(sentiment_tsv),
        "--text-column",
        "sentence",
        "--label-column",
        "label",
        "--param",
        "speed=fast",
        "--out",
        str(tmp_path / "out"),
    )
    assert result.returncode == 2
    event = events_of(result.stdout)[-1]
    assert event["kind"] == "bad_params" and "unknown parameter(s) speed" in event["message"]


def test_inspect_command(sentiment_tsv, tmp_path):
    result = run_cli("inspect", str(sentiment_tsv), "--text-column", "sentence", "--label-column", "label")
    assert result.returncode == 0
    assert json.loads(result.stdout)["rows"] == 64
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1\n")
    result = run_cli("inspect", str(bad))
    assert result.returncode == 1 and json.loads(result.stdout)["errors"][0]["row"] == 2


def test_methods_json():
    result = run_cli("methods", "--json")
    assert result.returncode == 0
    assert [m["name"] for m in json.loads(result.stdout)][:2] == ["lora", "ia3"]


def test_methods_json_with_a_model_adds_meta_device_counts(tiny_bert):
    result = run_cli("methods", "--json", "--model", str(tiny_bert))
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["red"]["count"]["trainable"] == 2 * 32 * 2 + 66  # 2 x hidden x blocks + the head
    assert rows["full"]["count"]["share"] == 1.0
    assert rows["lora"]["acts_on"] == ["attention"]
