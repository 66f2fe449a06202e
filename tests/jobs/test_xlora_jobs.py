"""An X-LoRA job (peftcore/xlora.py) refuses, when it is submitted, what its adapter cannot do: activation
checkpointing, groups that continue a shared adapter, training on from it (the job page offers no button)."""

import pytest
from django.test import Client

from jobs.errors import ValidationFailed
from jobs.models import Artifact
from tests.factories import job_for, sft_sibling
from tests.tiny_models import store_adapter

SFT = {"task": "sft", "method": "xlora", "text_column": "review", "label_column": "answer"}


def test_settings_an_xlora_adapter_cannot_take_are_refused_by_field(alice, sft_job):
    with pytest.raises(ValidationFailed) as refused:
        job_for(alice, sft_job.dataset, sft_job.base_model, **SFT, params={"gradient_checkpointing": True})
    assert "turn gradient checkpointing off" in refused.value.errors["params.gradient_checkpointing"]
    with pytest.raises(ValidationFailed) as refused:
        job_for(alice, sft_job.dataset, sft_job.base_model, **SFT, group_column="review", group_shared=True)
    assert "cannot be trained further" in refused.value.errors["group_shared"]
    job = job_for(alice, sft_job.dataset, sft_job.base_model, **SFT)  # the same job, as it can run
    assert job.method == "xlora"


def test_a_finished_xlora_job_offers_no_training_on_from_it(alice, sft_job, tiny_gemma_sft):
    _, adapter = tiny_gemma_sft
    lora, xlora = sft_job, sft_sibling(sft_job, method="xlora")
    store_adapter(xlora, adapter)  # any files: the page reads only that an adapter is there
    client = Client()
    client.force_login(alice)
    assert Artifact.objects.filter(job=xlora).exists()
    assert 'id="train-on"' in client.get(f"/jobs/{lora.pk}/").content.decode()
    page = client.get(f"/jobs/{xlora.pk}/").content.decode()
    assert 'id="download-adapter"' in page and 'id="train-on"' not in page
