"""The job form's live trainable-parameter count: defaults answer from the model's profile at once; other
settings are counted by the maintenance worker (on the meta device) and cached per parameter set."""

import re

import pytest
from django.test import Client

from jobs.models import TrainableCount
from jobs.profiles import count_trainable as worker_count
from peftcore.counting import count_trainable

pytestmark = pytest.mark.django_db


def _count(client, model, method, **params):
    query = {"base_model": model.pk, "method": method, **{f"m_{k}": v for k, v in params.items()}}
    return client.post("/jobs/new/count/", query)


def _number(html: str) -> int:
    found = re.search(r'<b class="trainable">([\d,]+)</b>', html)
    assert found, html
    return int(found.group(1).replace(",", ""))


def test_a_changed_rank_is_counted_by_the_worker_then_served_from_the_cache(
    client, tiny_model, tiny_model_dir, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        pending = _count(client, tiny_model, "lora", r=16, lora_alpha=32)
    assert pending.status_code == 200 and "Counting the trainable parameters" in pending.content.decode()
    assert 'hx-trigger="load delay:700ms"' in pending.content.decode()  # it polls until the count is in
    assert len(callbacks) == 1  # one count task queued
    count = TrainableCount.objects.get()
    assert count.params["r"] == 16 and count.result is None

    assert worker_count(count.pk) == "counted"  # what the maintenance worker runs
    expected = count_trainable(tiny_model_dir, "lora", {"r": 16, "lora_alpha": 32}, "text-classification")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert (
            _number(_count(client, tiny_model, "lora", r=16, lora_alpha=32).content.decode()) == expected["trainable"]
        )
    assert not callbacks and TrainableCount.objects.count() == 1
    at_defaults = count_trainable(tiny_model_dir, "lora", {}, "text-classification")["trainable"]
    assert expected["trainable"] > at_defaults  # a higher rank trains more


def test_settings_that_do_not_fit_say_what_to_fix_without_counting(client, tiny_model):
    response = _count(client, tiny_model, "lora", r=0)
    assert "Fix the LoRA parameters to see the count: r: must be between 1 and 256" in response.content.decode()
    assert not TrainableCount.objects.exists()


def test_a_method_the_model_cannot_take_is_refused_with_the_reason(client, tiny_model, tiny_model_dir):
    with_count = TrainableCount.objects.create(
        base_model=tiny_model, method="red", params_key="x", params={"placement": "ffn", "layers": "nonsense"}
    )
    assert worker_count(with_count.pk) == "counted"
    with_count.refresh_from_db()
    assert "layers" in with_count.result["refused"]


def test_another_teams_private_model_is_not_found(alice, bob):
    from jobs.models import BaseModel

    private = BaseModel.objects.create(name="alice's", source="local:tiny-bert", team=alice.memberships.get().team)
    bobs = Client()
    bobs.force_login(bob)
    assert _count(bobs, private, "lora", r=16).status_code == 404
    assert not TrainableCount.objects.exists()
