"""One job on two processes (gloo on this CPU machine, NCCL on GPUs): each optimizer step's rows split between
the ranks and the gradients summed must train the same adapter as one process with the whole batch."""

import pytest

from peftcore.events import ListSink
from peftcore.train import fit

from .conftest import make_spec
from .test_checkpoints import assert_close, losses, trained_weights


def test_two_processes_train_the_adapter_one_process_trains(bert_without_dropout, sentiment_tsv, tmp_path):
    params = {"epochs": 2, "batch_size": 8, "max_rows": 24, "max_length": 32, "learning_rate": 1e-2, "patience": 0}

    def train(out, **overrides):
        sink = ListSink()
        spec = make_spec(
            bert_without_dropout,
            sentiment_tsv,
            out,
            # query and value only, as in the micro-batch test: Adam magnifies summation-order noise in the
            # near-zero gradients of the feed-forward layers past any tolerance
            method_params={"lora_dropout": 0.0, "placement": "usual"},
            params=params,
            checkpoint_every_steps=3,
            **overrides,
        )
        return fit(spec, sink), sink

    one, one_sink = train(tmp_path / "one")
    two, two_sink = train(tmp_path / "two", processes=2)
    assert len(two_sink.of("progress")) == len(one_sink.of("progress")) == 6  # rank 0 reports for the job
    assert losses(two_sink) == pytest.approx(losses(one_sink), rel=1e-5)  # each the whole batch's loss
    assert_close(trained_weights(two.model), trained_weights(one.model))
    assert two.done["report"]["efficiency"]["train_tokens"] == one.done["report"]["efficiency"]["train_tokens"]
    assert [e["step"] for e in two_sink.of("checkpoint")] == [e["step"] for e in one_sink.of("checkpoint")] == [3]
    assert two.done["metrics"]["accuracy"] == one.done["metrics"]["accuracy"]
    assert (tmp_path / "two" / "adapter").is_dir()
