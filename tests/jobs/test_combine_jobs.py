"""Combination jobs (issue 21) through the runner with a real training child: two finished LoRA jobs combined
into a new adapter that is evaluated beside each parent on the same rows; the refusals the web process can
judge come back per field before anything is queued."""

import pytest
from django.test import TestCase

from jobs import runner, services
from jobs.errors import ValidationFailed
from jobs.models import Artifact, Job
from tests.factories import dataset_from, job_for, job_row, sft_sibling

TRAIN = "text,label\n" + "".join(f"good film {i},pos\nbad film {i},neg\n" for i in range(10))


@pytest.fixture
def trained(alice, tiny_model, tiny_model_dir, tmp_path):
    path = tmp_path / "train.csv"
    path.write_text(TRAIN)
    data = dataset_from(alice, path, name="train")

    def train(**params):
        job = job_for(
            alice, data, tiny_model, text_column="text", params={"epochs": 1, "eval_fraction": 0.25, **params}
        )
        assert runner.run(job.pk) == "succeeded"
        job.refresh_from_db()
        return job

    return train


def _combine(alice, parents, weights, **more):
    with TestCase.captureOnCommitCallbacks(execute=False):
        return services.job_combine_create(team=parents[0].team, user=alice, parents=parents, weights=weights, **more)


def test_a_combination_is_evaluated_beside_each_parent_on_the_same_rows(alice, trained):
    first, second = trained(seed=1, learning_rate=5e-2), trained(seed=2, learning_rate=5e-2)
    job = _combine(alice, [first, second], [1.0, -0.5])
    assert job.combine == {
        "parents": [first.pk, second.pk],
        "weights": [1.0, -0.5],
        "combination": "sum",
        "density": None,
    }
    assert runner.run(job.pk) == "succeeded"
    job.refresh_from_db()
    report = job.report.data
    parents = report["combination"]["parents"]
    assert [p["job"] for p in parents] == [first.pk, second.pk] and [p["weight"] for p in parents] == [1.0, -0.5]
    # the first parent's held-out rows (same data, seed and share): it scores here exactly what it scored alone
    # (the second, trained with another seed, held out other rows, so its own figure is not comparable)
    assert parents[0]["metrics"]["eval_loss"] == pytest.approx(first.metrics["eval_loss"], abs=1e-6)
    assert job.progress_total == 0 and "accuracy" in job.metrics
    assert job.artifacts.filter(kind=Artifact.Kind.ADAPTER).exists()  # the combined adapter, downloadable


def test_refusals_name_the_field(alice, bob, trained, tiny_model):
    first, second = trained(), trained(seed=2)
    cases = [
        ([first], [1.0], {}, "parents", "pick 2 to 8"),
        ([first, first], [1.0, 1.0], {}, "parents", "picked once"),
        ([first, second], [1.0], {}, "weights", "one weight per job"),
        ([first, second], [-1.0, -1.0], {}, "weights", "must be positive"),
        ([first, second], [1.0, 1.0], {"combination": "ties"}, "density", "density"),
        ([first, second], [1.0, 1.0], {"combination": "fold"}, "combination", "choose one of"),
        ([first, second], [1.0, 1.0], {"combination": "learned"}, "combination", "a language model that writes"),
    ]
    for parents, weights, more, field, words in cases:
        with pytest.raises(ValidationFailed) as caught:
            _combine(alice, parents, weights, **more)
        assert words in caught.value.errors[field], (field, caught.value.errors)
    loha = job_row(first.dataset, tiny_model, status=Job.Status.SUCCEEDED, method="loha")
    with pytest.raises(ValidationFailed) as caught:
        _combine(alice, [first, loha], [1.0, 1.0])
    assert "only LoRA and IA3 adapters combine" in caught.value.errors["parents"]
    ia3 = job_row(first.dataset, tiny_model, status=Job.Status.SUCCEEDED, method="ia3")
    with pytest.raises(ValidationFailed) as caught:
        _combine(alice, [first, ia3], [1.0, 1.0])
    assert "combine adapters of one kind" in caught.value.errors["parents"]
    pruned = job_row(first.dataset, tiny_model, status=Job.Status.SUCCEEDED, params={"prune_heads": 0.5})
    with pytest.raises(ValidationFailed) as caught:
        _combine(alice, [first, pruned], [1.0, 1.0])
    assert f"job #{pruned.pk}'s adapter fits a base model whose heads" in caught.value.errors["parents"]
    continued = job_row(
        first.dataset, tiny_model, status=Job.Status.SUCCEEDED, start_from=pruned, start_mode="continue"
    )
    with pytest.raises(ValidationFailed) as caught:
        _combine(alice, [first, continued], [1.0, 1.0])
    assert f"job #{continued.pk}'s adapter fits a base model whose heads" in caught.value.errors["parents"]
    running = job_row(first.dataset, tiny_model, status=Job.Status.RUNNING)
    with pytest.raises(ValidationFailed) as caught:
        _combine(alice, [first, running], [1.0, 1.0])
    assert "has not succeeded" in caught.value.errors["parents"]
    assert Job.objects.filter(combine__isnull=False).count() == 0  # nothing was queued


def test_a_parent_cannot_be_deleted_while_a_combination_waits_for_it(alice, trained):
    first, second = trained(), trained(seed=2)
    job = _combine(alice, [first, second], [1.0, 1.0])
    with pytest.raises(ValidationFailed, match=f"#{job.pk} are combining"):
        services.job_delete(job=second, user=alice)
    # a parent whose adapter went anyway (an operator's hand): the job fails saying which, not as a crash
    Artifact.objects.filter(job=second, kind=Artifact.Kind.ADAPTER).delete()
    assert runner.run(job.pk) == "cannot start"
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and job.error_kind == "bad_params"
    assert f"#{second.pk} no longer" in job.error_message


def test_a_learned_combination_trains_a_router_over_sft_adapters(alice, sft_job, tiny_gemma_sft, tmp_path):
    from django.conf import settings

    from peftcore.schema import validate_params
    from peftcore.training_params import TRAINING_PARAMS
    from tests.tiny_models import store_adapter, train_tiny_lora_sft

    pairs, _ = tiny_gemma_sft
    other = sft_sibling(sft_job)
    model = settings.MODEL_ROOT / "tiny-gemma3"
    store_adapter(other, train_tiny_lora_sft(model, pairs, tmp_path, epochs=1, batch_size=16, seed=2))
    with pytest.raises(ValidationFailed) as caught:
        _combine(alice, [sft_job, other], [1.0, -1.0], combination="learned")
    assert "cannot subtract" in caught.value.errors["weights"]
    # the settings a submitted job holds (every one resolved), kept small
    settings_held = validate_params(TRAINING_PARAMS, {"epochs": 1, "batch_size": 16, "max_length": 48})[0]
    Job.objects.filter(pk__in=[sft_job.pk, other.pk]).update(params=settings_held)
    sft_job.refresh_from_db()
    job = _combine(alice, [sft_job, other], [1.0, 1.0], combination="learned")
    assert job.method == "xlora" and job.method_params["n_experts"] == 2
    assert "learned mix" in job.choices["combine"]
    assert runner.run(job.pk) == "succeeded", job.error_message
    job.refresh_from_db()
    parents = job.report.data["combination"]["parents"]
    assert [p["job"] for p in parents] == [sft_job.pk, other.pk]
    assert all(p["metrics"]["eval_loss"] > 0 for p in parents)
    assert sum(p["router_share"] for p in parents) == pytest.approx(1.0, abs=1e-5)  # the page shows each share
    assert job.progress_total > 0 and "train_loss" in job.metrics  # the router trained
    assert job.artifacts.filter(kind=Artifact.Kind.ADAPTER).exists()
