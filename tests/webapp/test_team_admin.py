"""Roles, quotas, usage, the audit log and the team admin dashboard."""

import threading

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs import services
from jobs.models import Dataset, Job
from teams.models import ApiToken, AuditEntry, Membership, Team
from teams.services import user_create
from tests.conftest import api_client
from tests.factories import job_for


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def team(alice):
    return alice.memberships.get().team


@pytest.fixture
def owner(alice, team):
    Membership.objects.filter(user=alice).update(role=Membership.Role.OWNER)
    return alice


def test_a_viewer_reads_but_every_change_is_refused_with_what_to_ask_for(team, alice, dataset, tiny_model, sst2_sample):
    job = job_for(alice, dataset, tiny_model)
    viewer = user_create(username="vera", password="pw-vera", team=team, role=Membership.Role.VIEWER)
    page, api = browser(viewer), api_client(viewer)
    assert page.get(f"/jobs/{job.pk}/").status_code == 200 and api.get(f"/api/v1/jobs/{job.pk}").status_code == 200
    upload = api.post("/api/v1/datasets", {"file": SimpleUploadedFile("t.tsv", sst2_sample.read_bytes())})
    assert upload.status_code == 403 and "viewer of Team A cannot" in upload.json()["detail"]
    created = api.post(
        "/api/v1/jobs",
        {
            "dataset": dataset.pk,
            "base_model": tiny_model.pk,
            "method": "lora",
            "text_column": "sentence",
            "label_column": "label",
        },
        content_type="application/json",
    )
    assert created.status_code == 403 and "member role" in created.json()["detail"]
    for url in (f"/api/v1/jobs/{job.pk}/cancel", f"/api/v1/jobs/{job.pk}/resume", f"/api/v1/jobs/{job.pk}/playground"):
        assert api.post(url, {"texts": ["x"]}, content_type="application/json").status_code == 403, url
    assert page.post(f"/jobs/{job.pk}/cancel/").status_code == 403
    assert page.post("/datasets/", {"file": SimpleUploadedFile("t.tsv", sst2_sample.read_bytes())}).status_code == 403
    assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED and Dataset.objects.count() == 1


def test_only_admins_open_the_dashboard(team, alice, owner):
    member = user_create(username="mo", password="pw-mo", team=team)
    assert browser(member).get("/team/").status_code == 403
    assert browser(alice).get("/team/").status_code == 200


def test_the_dashboard_shows_every_part_in_a_fixed_number_of_queries(owner, dataset, tiny_model):
    client = browser(owner)
    job_for(owner, dataset, tiny_model)
    with CaptureQueriesContext(connection) as few:
        page = client.get("/team/").content.decode()
    for part in (
        'id="usage"',
        'id="members"',
        'id="jobs-overview"',
        'id="queue"',
        'id="workers"',
        'id="audit"',
        "<svg",
    ):
        assert part in page, part
    for _ in range(12):
        job = job_for(owner, dataset, tiny_model)
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.FAILED, error_kind="internal", error_message="boom", finished_at=timezone.now()
    )
    with CaptureQueriesContext(connection) as many:
        page = client.get("/team/").content.decode()
    assert len(many.captured_queries) == len(few.captured_queries)
    assert "boom" in page and "#12" in page  # the failure, and the twelfth place in the queue


def test_admins_manage_members_and_only_owners_manage_admins(team, alice, owner):
    admin = user_create(username="ada", password="pw-ada", team=team, role=Membership.Role.ADMIN)
    user_create(username="newbie", password="pw-newbie", team=Team.objects.create(name="Elsewhere"))
    client = browser(admin)
    assert client.post("/team/members/", {"username": "newbie", "role": "member"}).status_code == 302
    newbie = Membership.objects.get(team=team, user__username="newbie")
    client.post(f"/team/members/{newbie.pk}/", {"role": "viewer"})
    assert Membership.objects.get(pk=newbie.pk).role == "viewer"
    response = client.post(f"/team/members/{newbie.pk}/", {"role": "admin"}, follow=True)
    assert "only an owner" in response.content.decode() and Membership.objects.get(pk=newbie.pk).role == "viewer"
    browser(alice).post(f"/team/members/{newbie.pk}/", {"role": "admin"})
    assert Membership.objects.get(pk=newbie.pk).role == "admin"
    mine = Membership.objects.get(user=alice)
    response = browser(alice).post(f"/team/members/{mine.pk}/", {"role": "member"}, follow=True)
    assert "needs an owner" in response.content.decode() and Membership.objects.get(pk=mine.pk).role == "owner"
    actions = list(AuditEntry.objects.filter(team=team).values_list("action", flat=True))
    assert actions.count("member.role") == 2 and "member.add" in actions


def test_a_member_of_another_team_cannot_be_changed_from_this_one(owner, bob):
    other = Membership.objects.get(user=bob)
    assert browser(owner).post(f"/team/members/{other.pk}/", {"role": "viewer"}).status_code == 404
    assert Membership.objects.get(pk=other.pk).role == "member"


def test_a_submission_over_the_concurrent_job_quota_is_refused_with_the_figure(team, alice, dataset, tiny_model):
    Team.objects.filter(pk=team.pk).update(max_concurrent_jobs=1)
    job_for(alice, dataset, tiny_model)
    with pytest.raises(services.ValidationFailed) as exc:
        job_for(alice, dataset, tiny_model)
    assert "has 1 job(s) queued or running; its limit is 1" in exc.value.message
    assert exc.value.errors == {"quota": exc.value.message} and Job.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_submissions_cannot_slip_past_the_quota(team, alice, dataset, tiny_model):
    Team.objects.filter(pk=team.pk).update(max_concurrent_jobs=3)
    barrier, outcomes = threading.Barrier(10), []

    def submit():
        try:
            barrier.wait()
            job_for(alice, dataset, tiny_model, capture=False)
            outcomes.append("created")
        except services.ValidationFailed:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created"] * 3 + ["refused"] * 7
    assert Job.objects.filter(team=team).count() == 3


def test_compute_hours_and_storage_quotas(team, alice, dataset, tiny_model, sst2_sample):
    job = job_for(alice, dataset, tiny_model)
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.SUCCEEDED, started_at=timezone.now(), run_seconds=7200, device="cpu"
    )
    Team.objects.filter(pk=team.pk).update(compute_hours_per_month=2)
    with pytest.raises(services.ValidationFailed, match="used 2.0 of its 2 compute hours this month"):
        job_for(alice, dataset, tiny_model)
    Team.objects.filter(pk=team.pk).update(compute_hours_per_month=None, max_storage_bytes=dataset.size_bytes + 10)
    with pytest.raises(services.ValidationFailed, match="storage limit"):
        services.dataset_create(team=team, user=alice, name="again", path=sst2_sample, filename="again.tsv")
    assert Dataset.objects.count() == 1
    from jobs.models import Blob

    assert Blob.objects.count() == 1  # the refused upload left no bytes behind


def test_usage_is_rolled_up_per_member_and_month(owner, dataset, tiny_model):
    from jobs.dashboard import usage_by_member_month

    for seconds in (60, 90):
        job = job_for(owner, dataset, tiny_model)
        Job.objects.filter(pk=job.pk).update(started_at=timezone.now(), run_seconds=seconds, device="cpu")
    rows = usage_by_member_month(team=dataset.team)
    assert [(r["created_by__username"], r["device"], r["jobs"], r["seconds"]) for r in rows] == [
        ("alice", "cpu", 2, 150)
    ]
    assert "2m 30s" in browser(owner).get("/team/").content.decode()


def test_the_audit_log_records_uploads_jobs_cancels_downloads_and_quota_changes(owner, dataset, tiny_model):
    job = job_for(owner, dataset, tiny_model)
    api = api_client(owner)
    api.post(f"/api/v1/jobs/{job.pk}/cancel")
    browser(owner).post(
        "/team/quotas/", {"max_concurrent_jobs": "4", "compute_hours_per_month": "", "max_storage_gb": "2"}
    )
    team = Team.objects.get(pk=dataset.team_id)
    assert (team.max_concurrent_jobs, team.compute_hours_per_month, team.max_storage_bytes) == (4, None, 2 * 10**9)
    entries = list(AuditEntry.objects.filter(team=team).order_by("pk").values_list("action", flat=True))
    assert entries == ["dataset.upload", "job.create", "token.create", "job.cancel", "quota.change"]
    assert list(AuditEntry.objects.filter(team=team).order_by("pk").values_list("target", flat=True)) == [
        f"dataset {dataset.pk}",
        f"job {job.pk}",
        ApiToken.objects.get(user=owner).hint.join(["token ", ""]),
        f"job {job.pk}",
        "team Team A",
    ]


def test_the_api_shows_the_team_its_members_usage_and_audit_to_the_right_roles(owner, team, dataset, tiny_model):
    Team.objects.filter(pk=team.pk).update(max_concurrent_jobs=5)
    job = job_for(owner, dataset, tiny_model)
    Job.objects.filter(pk=job.pk).update(started_at=timezone.now(), run_seconds=1800, device="cpu")
    member = api_client(user_create(username="mo", password="pw-mo", team=team))
    mine = member.get("/api/v1/team").json()
    assert (mine["role"], mine["quotas"]["max_concurrent_jobs"], mine["usage"]["active_jobs"]) == ("member", 5, 1)
    assert mine["usage"]["compute_hours_this_month"] == 0.5
    assert mine["usage"]["storage_bytes"]["datasets"] == dataset.size_bytes
    assert {m["username"] for m in member.get("/api/v1/team/members").json()} == {"alice", "mo"}
    assert member.get("/api/v1/team/usage").status_code == 403
    admin = api_client(owner)
    assert admin.get("/api/v1/team/usage").json()[0]["seconds"] == 1800
    assert [e["action"] for e in admin.get("/api/v1/team/audit").json()] == [
        "token.create",
        "token.create",
        "job.create",
        "dataset.upload",
    ]
