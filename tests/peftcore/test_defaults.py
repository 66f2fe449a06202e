"""Defaults that adapt to the data: each empty setting is chosen by a general rule with its reason, and a value
the user set is never touched; the hold-out is stratified and big enough to measure; the report's verdict."""

import pytest

from peftcore import defaults
from peftcore.defaults import Facts, eval_rows, resolve
from peftcore.methods import get_method
from peftcore.schema import validate_params
from peftcore.splits import holdout_split
from peftcore.training_params import TRAINING_PARAMS
from peftcore.verdict import interval, intervals, warnings

LORA = get_method("lora")


def clean(**given):
    params, errors = validate_params(TRAINING_PARAMS, given)
    assert not errors
    return params


def lora_params(**given):
    params, errors = validate_params(LORA.params, given)
    assert not errors
    return params


def classify(rows, **more):
    return Facts(generative=False, has_labels=True, train_rows=rows, num_labels=2, **more)


@pytest.mark.parametrize(
    ("rows", "batch", "epochs"),
    [(100, 16, 30), (240, 16, 20), (1_800, 32, 6), (7_200, 32, 2), (54_000, 32, 1)],
)
def test_small_data_gets_more_passes_and_large_data_fewer_from_one_step_budget(rows, batch, epochs):
    chosen = resolve(classify(rows), LORA, clean(), lora_params())
    assert (chosen.params["batch_size"], chosen.params["epochs"]) == (batch, epochs)
    assert f"{rows:,} training rows" in chosen.reasons["params.batch_size"]
    assert "stops early" in chosen.reasons["params.epochs"]


def test_generative_tasks_take_at_most_three_passes():
    chosen = resolve(Facts(generative=True, has_labels=False, train_rows=200), LORA, clean(), lora_params())
    assert chosen.params["epochs"] == defaults.GENERATIVE_MAX_EPOCHS
    assert chosen.params.get("head_learning_rate") is None  # no new head to train


def test_max_length_fits_95_percent_of_the_texts_rounded_up_and_capped():
    assert resolve(classify(500, token_p95=37), LORA, clean(), lora_params()).params["max_length"] == 40
    assert resolve(classify(500, token_p95=3), LORA, clean(), lora_params()).params["max_length"] == defaults.MIN_LENGTH
    long = resolve(classify(500, token_p95=5000), LORA, clean(), lora_params())
    assert (
        long.params["max_length"] == defaults.LENGTH_CAP[False] and "capped at 256" in long.reasons["params.max_length"]
    )
    limited = resolve(classify(500, token_p95=5000, position_limit=128), LORA, clean(), lora_params())
    assert limited.params["max_length"] == 128
    assert resolve(classify(500), LORA, clean(), lora_params()).params["max_length"] is None  # training measures


def test_what_the_user_set_is_kept_and_not_explained():
    chosen = resolve(
        classify(5_000, token_p95=40),
        LORA,
        clean(epochs=2, batch_size=8, max_length=64, learning_rate=5e-4, head_learning_rate=1e-3),
        lora_params(r=4, lora_alpha=7),
    )
    assert chosen.params | {"epochs": 2, "batch_size": 8, "max_length": 64} == chosen.params
    assert (chosen.params["learning_rate"], chosen.params["head_learning_rate"]) == (5e-4, 1e-3)
    assert chosen.method_params["lora_alpha"] == 7
    assert chosen.reasons == {}


def test_alpha_follows_the_rank_so_the_update_keeps_its_scale():
    for rank in (4, 8, 16, 64):
        chosen = resolve(classify(2_000), LORA, clean(), lora_params(r=rank))
        assert chosen.method_params["lora_alpha"] == 2 * rank
        assert f"twice the rank ({rank})" in chosen.reasons["method_params.lora_alpha"]


def test_lora_adapts_every_linear_layer_of_each_block_by_default():
    assert lora_params()["placement"] == "both"
    assert "usual" in next(p for p in LORA.params if p.name == "placement").choices  # peft's narrower one stays


def test_the_head_learns_at_its_own_higher_rate_and_each_method_at_its_measured_rate():
    for name in ("lora", "ia3", "red"):
        method = get_method(name)
        params, _ = validate_params(method.params, {})
        chosen = resolve(classify(2_000), method, clean(), params)
        assert chosen.params["learning_rate"] == method.recommended_learning_rate
        assert chosen.params["head_learning_rate"] == max(defaults.HEAD_LEARNING_RATE, method.recommended_learning_rate)


def test_lora_with_a_corda_start_gets_a_tenth_of_the_rate_unless_one_is_set():
    for init, rate in (("corda", 1e-4), ("corda_kpm", 1e-4), ("pissa", LORA.recommended_learning_rate)):
        params, _ = validate_params(LORA.params, {"init": init})
        chosen = resolve(classify(2_000), LORA, clean(), params)
        assert chosen.params["learning_rate"] == rate
        assert chosen.params["head_learning_rate"] == defaults.HEAD_LEARNING_RATE  # the head keeps its own
    assert (
        "CorDA" in resolve(classify(2_000), LORA, clean(), params | {"init": "corda"}).reasons["params.learning_rate"]
    )
    chosen = resolve(classify(2_000), LORA, clean(learning_rate=5e-4), params | {"init": "corda"})
    assert chosen.params["learning_rate"] == 5e-4  # a rate the user set is kept


@pytest.mark.parametrize(("rows", "held"), [(40, 10), (300, 75), (2_000, 200), (8_000, 800), (60_000, 6_000)])
def test_the_automatic_hold_out_is_big_enough_to_measure(rows, held):
    assert eval_rows(rows, None) == held
    assert eval_rows(rows, 0.1) == round(rows * 0.1)  # a share the user set is kept


def test_the_hold_out_is_stratified_by_label():
    items = [("a", "pos")] * 900 + [("b", "neg")] * 100
    import random

    random.Random(3).shuffle(items)
    train, held = holdout_split(items, None, key=lambda item: item[1])
    assert len(held) == 200 and len(train) == 800
    assert sum(1 for _, label in held if label == "neg") == 20  # 10% of the hold-out, as in the data
    rare = [("x", "pos")] * 50 + [("y", "neg")] * 2
    train, held = holdout_split(rare, None, key=lambda item: item[1])
    assert any(label == "neg" for _, label in train)  # a rare label keeps a row to learn from


def test_an_accuracy_comes_with_its_95_percent_interval():
    low, high = interval(0.8, 872)
    assert 0.77 < low < 0.8 < high < 0.83
    narrow, wide = interval(0.8, 8_000), interval(0.8, 50)
    assert narrow[1] - narrow[0] < high - low < wide[1] - wide[0]
    assert intervals({"accuracy": 0.8, "exact_match": 0.5}, 100, generated_rows=None) == {
        "accuracy": interval(0.8, 100)
    }


def test_a_one_class_model_is_called_out_with_the_likely_cause_and_the_fix():
    report = {"labels": ["neg", "pos"], "metrics": {"accuracy": 0.633}, "confusion_matrix": [[0, 110], [0, 190]]}
    report["intervals"] = intervals(report["metrics"], 300)
    (found,) = warnings(report)
    assert found["kind"] == "one_class" and "'pos' for every one of the 300" in found["message"]
    assert "more rows" in found["fix"]


def test_a_model_no_better_than_the_majority_label_or_the_untrained_one_is_called_out():
    majority = {"metrics": {"accuracy": 0.62}, "confusion_matrix": [[10, 90], [24, 176]], "labels": ["a", "b"]}
    majority["intervals"] = intervals(majority["metrics"], 300)
    assert [w["kind"] for w in warnings(majority)] == ["majority"]
    worse = {
        "metrics": {"accuracy": 0.8},
        "confusion_matrix": [[120, 30], [30, 120]],
        "labels": ["a", "b"],
        "baseline_metrics": {"accuracy": 0.81},
    }
    worse["intervals"] = intervals(worse["metrics"], 300)
    assert [w["kind"] for w in warnings(worse)] == ["no_gain"]
    good = dict(worse, baseline_metrics={"accuracy": 0.5})
    assert warnings(good) == []


def test_the_untrained_model_is_measured_on_a_spread_of_at_most_256_rows():
    from peftcore.loop import baseline_rows

    assert baseline_rows(100, 32) == list(range(100))  # small sets: every row
    picked = baseline_rows(872, 32)
    assert len(picked) == defaults.BASELINE_ROWS and picked == sorted(set(picked)) and picked[-1] < 872
    assert picked[:32] == list(range(32))  # the rows the report shows generations for, before and after
    sorted_by_label = [0] * 436 + [1] * 436  # evaluation files are often sorted by label
    share = sum(sorted_by_label[i] for i in picked) / len(picked)
    assert 0.45 < share < 0.55
