"""Trainable Tokens (peftcore/methods/trainable_tokens.py): the embedding rows of the tokens the training rows use
most train and nothing else does; the saved adapter names those tokens and reloads in plain peft; a classifier
is refused before anything trains; a run resumes exactly (the same rows pick the same tokens again)."""

import json
from collections import Counter

import pytest
import torch

from peftcore.errors import BAD_PARAMS, TrainingError
from peftcore.events import ListSink
from peftcore.methods.trainable_tokens import most_used
from peftcore.predict import load_predictor
from peftcore.tasks import get_task
from peftcore.train import fit, run
from tests.tiny_models import make_review_answer_file


def test_the_most_used_tokens_are_chosen_ties_by_id_and_topped_up_to_the_count():
    features = [{"input_ids": [5, 5, 7, 9]}, {"input_ids": [7, 5, 3]}]
    assert most_used(features, 2, 100) == [5, 7]  # 5 three times, 7 twice
    assert most_used(features, 3, 100) == [3, 5, 7]  # 3 and 9 once each: the lower id wins the tie
    # four distinct tokens seen, six asked: the two lowest unused ids fill up (the count shown before the run)
    assert most_used(features, 6, 100) == [0, 1, 3, 5, 7, 9]


def test_a_preference_row_counts_both_answers():
    pair = {"chosen": {"input_ids": [1, 2, 2]}, "rejected": {"input_ids": [1, 4, 4, 4]}, "input_ids": [1, 4, 4, 4]}
    assert most_used([pair], 2, 10) == [1, 4]  # 4 three times, 1 twice, 2 twice (1 wins the tie by id)


def _spec(folder, data, out, **params):
    return {
        "task": "sft",
        "model_path": str(folder),
        "method": "trainable_tokens",
        "method_params": {"tokens": 12},
        "train_file": str(data),
        "text_column": "review",
        "label_column": "answer",
        "template": "plain",
        "output_dir": str(out),
        "params": {"epochs": 2, "batch_size": 8, "max_length": 32, "learning_rate": 1e-2, **params},
    }


@pytest.mark.parametrize("shape", ["llama", "gpt2"])
def test_only_the_datas_most_used_tokens_train_and_the_adapter_reloads_in_peft(tiny_shape, tmp_path, shape):
    folder = tiny_shape(shape)
    data = make_review_answer_file(tmp_path / "pairs.jsonl", rows=32)
    result = fit(_spec(folder, data, tmp_path / "out"), ListSink())

    saved = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert saved["peft_type"] == "TRAINABLE_TOKENS"
    counts = Counter()
    for row in data.read_text().splitlines():
        counts.update(result.tokenizer(json.loads(row)["review"], add_special_tokens=False)["input_ids"])
    chosen = set(saved["token_indices"])
    assert len(chosen) == 12
    # the review words are most of every row, so the most used of them are among the chosen tokens
    assert {token for token, _ in counts.most_common(4)} <= chosen

    base = get_task("sft").load_model(folder, [], result.tokenizer)[0].get_input_embeddings().weight.detach()
    trained = result.model.merge_and_unload().get_input_embeddings().weight.detach()
    changed = set(torch.nonzero((trained - base).abs().amax(-1) > 0).flatten().tolist())
    assert changed and changed <= chosen  # only the chosen rows moved
    assert result.done["report"]["metrics"]["eval_loss"] < result.done["report"]["baseline_metrics"]["eval_loss"]


def test_reloading_gives_the_trained_models_logits(tiny_shape, tmp_path):
    folder = tiny_shape("llama")
    data = make_review_answer_file(tmp_path / "pairs.jsonl", rows=32)
    result = fit(_spec(folder, data, tmp_path / "out"), ListSink())
    ids = result.tokenizer("the film was good", return_tensors="pt")
    result.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            load_predictor(folder, result.adapter_dir).model(**ids).logits, result.model(**ids).logits
        )


def test_a_classifier_is_refused_before_anything_trains(tiny_bert, sentiment_tsv, tmp_path):
    from tests.peftcore.conftest import make_spec

    with pytest.raises(TrainingError) as raised:
        run(make_spec(tiny_bert, sentiment_tsv, tmp_path, method="trainable_tokens"), ListSink())
    assert raised.value.kind == BAD_PARAMS and "does not support the task 'text-classification'" in raised.value.message


def test_a_trainable_tokens_run_resumes_exactly(tiny_shape, tmp_path):
    from tests.peftcore.test_checkpoints import assert_resumes_exactly, generation_spec

    data = make_review_answer_file(tmp_path / "pairs.jsonl")

    def make(out, **overrides):
        return generation_spec(tiny_shape("llama"), data, out, task="sft", method="trainable_tokens", **overrides)

    assert_resumes_exactly(make, tmp_path)
