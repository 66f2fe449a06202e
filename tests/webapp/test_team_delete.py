"""Owners delete their team with everything in it, bytes included; nobody else can, and not while it trains."""

import pytest
from django.test import Client

from jobs import runtime, services
from jobs.errors import Conflict
from jobs.models import Blob, BlobChunk, Dataset, Job
from teams.actor import Actor
from teams.models import Membership, Team
from tests.factories import dataset_from, job_for


@pytest.fixture
def owner(make_member):
    return make_member("olga", "Team A", role=Membership.Role.OWNER)


def _browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _job(owner, sst2_sample, tiny_model):
    """A queued job of Team A's."""
    return job_for(owner, dataset_from(owner, sst2_sample, name="a"), tiny_model)


def test_an_owner_deletes_the_team_and_its_stored_bytes_after_typing_its_name(
    owner, alice, bob, sst2_sample, tiny_model
):
    job = _job(owner, sst2_sample, tiny_model)
    bobs_dataset = dataset_from(bob, sst2_sample, name="b")
    client = _browser(owner)
    assert "delete-team" in client.get("/team/").content.decode()
    # Refused while the job is queued.
    page = client.post("/team/delete/", {"confirm": "Team A"}, follow=True).content.decode()
    assert "1 queued or running job(s); cancel them first" in page
    Job.objects.filter(pk=job.pk).update(status=Job.Status.CANCELLED)
    page = client.post("/team/delete/", {"confirm": "team a"}, follow=True).content.decode()
    assert "type the team&#x27;s name, Team A" in page
    assert Team.objects.filter(name="Team A").exists()

    assert client.post("/team/delete/", {"confirm": "Team A"}).status_code == 302
    assert not Team.objects.filter(name="Team A").exists()
    assert not Job.objects.exists() and not Membership.objects.filter(user=alice).exists()
    # Only Team B's bytes remain.
    assert list(Blob.objects.values_list("pk", flat=True)) == [bobs_dataset.blob_id]
    assert set(BlobChunk.objects.values_list("blob_id", flat=True)) == {bobs_dataset.blob_id}
    assert Dataset.objects.get().pk == bobs_dataset.pk


def test_only_owners_may_delete_a_team(owner, make_member):
    admin = make_member("ada", "Team A", role=Membership.Role.ADMIN)
    client = _browser(admin)
    assert "delete-team" not in client.get("/team/").content.decode()
    assert client.post("/team/delete/", {"confirm": "Team A"}).status_code == 403
    assert Team.objects.filter(name="Team A").exists()


def test_a_running_job_blocks_deletion(owner, sst2_sample, tiny_model):
    job = _job(owner, sst2_sample, tiny_model)
    runtime.job_claim(job_id=job.pk, owner="w/1")
    with pytest.raises(Conflict, match="cancel them first"):
        services.team_delete(actor=Actor.of(Membership.objects.get(user=owner)), confirm_name="Team A")
    assert Job.objects.get(pk=job.pk).status == Job.Status.RUNNING


def test_the_api_deletes_a_team_for_its_owner_only(owner, alice):
    from tests.conftest import api_client

    assert api_client(alice).delete("/api/v1/team?confirm=Team%20A").status_code == 403
    api = api_client(owner)
    assert api.delete("/api/v1/team?confirm=Team").status_code == 400
    assert api.delete("/api/v1/team?confirm=Team%20A").status_code == 204
    assert not Team.objects.filter(name="Team A").exists()
    assert api.get("/api/v1/team").status_code == 401  # the token went with the team
