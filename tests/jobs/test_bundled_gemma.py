"""The bundled Gemma 3 270M in the studio: registered as "preparing" when the studio starts, refused for jobs
until ready, converted by the maintenance task (here on a model root that already holds the real conversion),
offered for SFT while the encoder is not, and its state in the API."""

import pytest
from django.test import Client, override_settings

from jobs import selectors, services
from jobs.errors import ValidationFailed
from jobs.model_folders import prepare_base_model
from jobs.models import BaseModel
from peftcore import gemma_bundle
from tests.factories import dataset_from

pytestmark = pytest.mark.real_model


@pytest.fixture
def empty_root(tmp_path):
    root = tmp_path / "models"
    root.mkdir()
    with override_settings(BUNDLED_GEMMA=True, MODEL_ROOT=root):
        yield root


def test_gemma_is_prepared_in_the_background_and_refused_until_ready(
    alice, alice_api, empty_root, converted_gemma_root, shared_data, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.base_model_register_bundled()
    gemma = BaseModel.objects.get(source=gemma_bundle.MODEL_ID)
    assert gemma.state == BaseModel.State.PREPARING and gemma.team is None
    assert len(callbacks) == 2  # Gemma's conversion and MiniLM's profile, each once committed

    dataset = dataset_from(alice, shared_data / "gsm8k" / "train.jsonl", name="gsm8k")
    fields = dict(
        dataset=dataset,
        eval_dataset=None,
        base_model=gemma,
        method="lora",
        task="sft",
        text_column="question",
        label_column="answer",
        method_params={},
        params={},
    )
    with pytest.raises(ValidationFailed) as refused:
        services.job_validate(**fields)
    assert "still being prepared" in refused.value.errors["base_model"]
    client = Client()
    client.force_login(alice)
    page = client.get("/jobs/new/", {"task": "sft", "dataset": dataset.pk}).content.decode()
    assert "Gemma 3 270M (bundled) (preparing" in page
    assert "all-MiniLM-L6-v2" not in page  # an encoder cannot write answers: not offered for SFT
    assert alice_api.get("/api/v1/models").json()[0]["state"] in ("preparing", "ready")

    (empty_root / gemma_bundle.FOLDER).parent.mkdir(parents=True)
    (empty_root / gemma_bundle.FOLDER).symlink_to(converted_gemma_root / gemma_bundle.FOLDER)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert prepare_base_model(gemma.pk) == "prepared"
    assert len(callbacks) == 1  # its profile, once ready
    gemma.refresh_from_db()
    assert gemma.state == BaseModel.State.READY
    services.job_validate(**fields)  # accepted now
    states = {m["source"]: m["state"] for m in alice_api.get("/api/v1/models").json()}
    assert states[gemma_bundle.MODEL_ID] == "ready"
    usable = {m.source for m in selectors.base_models_for_task(BaseModel.objects.all(), _task("sft"))}
    assert gemma_bundle.MODEL_ID in usable and "bundled/all-MiniLM-L6-v2" not in usable


def _task(name):
    from peftcore.tasks import get_task

    return get_task(name)
