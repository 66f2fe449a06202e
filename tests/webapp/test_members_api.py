"""Team members through the API (admins), and the job list's filters."""

import pytest

from jobs.models import Job
from teams.models import AuditEntry, Membership
from tests.conftest import api_client
from tests.factories import dataset_from, job_for


@pytest.fixture
def admin(make_member):
    return make_member("ada", "Team A", role=Membership.Role.ADMIN)


def test_admins_add_change_and_remove_members_and_a_removed_members_token_dies(admin, alice, bob):
    api = api_client(admin)
    added = api.post("/api/v1/team/members", {"username": "bob", "role": "viewer"}, content_type="application/json")
    assert added.status_code == 201 and added.json()["role"] == "viewer"
    bobs_token = api_client(bob)  # bob still works in Team B: his token is scoped there
    assert bobs_token.get("/api/v1/team").json()["name"] == "Team B"
    changed = api.patch("/api/v1/team/members/bob", {"role": "member"}, content_type="application/json")
    assert changed.status_code == 200 and Membership.objects.get(user=bob, team__name="Team A").role == "member"
    refused = api.patch("/api/v1/team/members/bob", {"role": "admin"}, content_type="application/json")
    assert refused.status_code == 400 and "only an owner" in refused.json()["detail"]
    assert api.post("/api/v1/team/members", {"username": "ghost"}, content_type="application/json").json() == {
        "detail": "there is no user named 'ghost'; they must have an account first"
    }
    assert api.delete("/api/v1/team/members/bob").status_code == 204
    assert not Membership.objects.filter(user=bob, team__name="Team A").exists()
    assert api.delete("/api/v1/team/members/bob").status_code == 404
    assert api_client(alice).delete("/api/v1/team/members/ada").status_code == 403
    assert [
        e.action for e in AuditEntry.objects.filter(team__name="Team A", action__startswith="member.").order_by("pk")
    ] == ["member.add", "member.role", "member.remove"]


def test_a_member_removed_from_a_team_loses_that_teams_token(admin, alice):
    alices = api_client(alice)
    assert alices.get("/api/v1/jobs").status_code == 200
    assert api_client(admin).delete("/api/v1/team/members/alice").status_code == 204
    assert alices.get("/api/v1/jobs").status_code == 401


def test_the_job_list_filters_by_status_method_dataset_and_task(alice, sst2_sample, tiny_model):
    d1 = dataset_from(alice, sst2_sample, name="one", filename="1.tsv")
    d2 = dataset_from(alice, sst2_sample, name="two", filename="2.tsv")
    jobs = [job_for(alice, d, tiny_model, method=m) for d, m in ((d1, "lora"), (d1, "bitfit"), (d2, "lora"))]
    Job.objects.filter(pk=jobs[0].pk).update(status=Job.Status.SUCCEEDED)
    api = api_client(alice)

    def ids(query):
        return sorted(j["id"] for j in api.get(f"/api/v1/jobs?{query}").json())

    assert ids("method=lora") == sorted([jobs[0].pk, jobs[2].pk])
    assert ids(f"dataset={d1.pk}&method=lora") == [jobs[0].pk]
    assert ids("status=queued") == sorted([jobs[1].pk, jobs[2].pk])
    assert ids("task=sft") == []
    assert len(ids("")) == 3
