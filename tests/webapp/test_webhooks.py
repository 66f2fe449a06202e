"""Webhooks in the team dashboard and the API: admins only, team scoped, the secret shown once, failures shown."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from jobs import notifications
from jobs.models import Job, Webhook, WebhookDelivery
from teams.actor import Actor
from teams.models import AuditEntry, Membership
from teams.services import user_create
from tests.conftest import api_client, wait_for
from tests.factories import dataset_from, job_row
from tests.webhook_receiver import Receiver, verify


def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def admin_of(user):
    Membership.objects.filter(user=user).update(role=Membership.Role.ADMIN)
    return user


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def _failed_job(user, sst2_sample, model) -> Job:
    return job_row(
        dataset_from(user, sst2_sample),
        model,
        name="doomed",
        status=Job.Status.FAILED,
        error_kind="internal",
        error_message="boom",
    )


def test_an_admin_adds_a_webhook_sees_its_secret_once_and_deletes_it(alice, receiver):
    client = browser(admin_of(alice))
    response = client.post("/team/webhooks/", {"url": receiver.url, "events": ["failed", "succeeded"]})
    hook = Webhook.objects.get()
    assert response.status_code == 201 and hook.secret in response.content.decode()
    assert hook.events == ["failed", "succeeded"] and hook.created_by == alice
    dashboard = client.get("/team/").content.decode()
    assert 'id="webhooks"' in dashboard and receiver.url in dashboard and hook.secret not in dashboard
    listed = api_client(alice).get("/api/v1/team/webhooks").json()
    assert [h["url"] for h in listed] == [receiver.url] and "secret" not in listed[0]
    assert client.post(f"/team/webhooks/{hook.pk}/delete/").status_code == 302
    assert not Webhook.objects.exists()
    actions = list(AuditEntry.objects.filter(team=hook.team).values_list("action", flat=True))
    assert actions.count("webhook.create") == 1 and actions.count("webhook.delete") == 1


def test_a_url_that_is_not_http_is_refused_with_what_to_give(alice):
    response = browser(admin_of(alice)).post(
        "/team/webhooks/", {"url": "ftp://example.com/x", "events": ["failed"]}, follow=True
    )
    assert "give a full http:// or https:// URL" in response.content.decode()
    api = api_client(alice).post(
        "/api/v1/team/webhooks", {"url": "file:///etc/passwd", "events": ["failed"]}, content_type="application/json"
    )
    assert api.status_code == 400 and "http:// or https://" in api.json()["detail"]
    assert not Webhook.objects.exists()


@pytest.mark.parametrize("url", ["http://[::1/", "https://[not-an-address]/x", "http://example.com:99999/"])
def test_a_url_that_cannot_be_read_is_a_400_not_a_server_error(alice, url):
    api = api_client(admin_of(alice)).post(
        "/api/v1/team/webhooks", {"url": url, "events": ["failed"]}, content_type="application/json"
    )
    assert api.status_code == 400 and "is not a web address" in api.json()["detail"]
    page = browser(admin_of(alice)).post("/team/webhooks/", {"url": url, "events": ["failed"]}, follow=True)
    assert page.status_code == 200 and "is not a web address" in page.content.decode()
    assert not Webhook.objects.exists()


def test_the_api_creates_lists_shows_deliveries_and_deletes(alice, receiver, sst2_sample, tiny_model):
    api = api_client(admin_of(alice))
    created = api.post(
        "/api/v1/team/webhooks", {"url": receiver.url, "events": ["failed"]}, content_type="application/json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["events"] == ["failed"] and body["last_delivery"] is None
    job = _failed_job(alice, sst2_sample, tiny_model)
    notifications.notifications_sweep()
    assert verify(body["secret"], receiver.requests[0]["headers"], receiver.requests[0]["body"])
    deliveries = api.get(f"/api/v1/team/webhooks/{body['id']}/deliveries").json()
    assert [(d["job"], d["event"], d["status"], d["attempts"], d["last_status_code"]) for d in deliveries] == [
        (job.pk, "failed", "delivered", 1, 200)
    ]
    assert api.get("/api/v1/team/webhooks").json()[0]["last_delivery"]["status"] == "delivered"
    assert api.delete(f"/api/v1/team/webhooks/{body['id']}").status_code == 204
    assert api.get("/api/v1/team/webhooks").json() == []


def test_deliveries_that_gave_up_are_shown_to_admins(alice, sst2_sample, tiny_model, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    broken = Receiver(status=500)
    try:
        notifications.webhook_create(
            actor=Actor.of(Membership.objects.get(user=admin_of(alice))), url=broken.url, events=["failed"]
        )
        job = _failed_job(alice, sst2_sample, tiny_model)
        notifications.notifications_sweep()
        WebhookDelivery.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))  # the backoff is over
        notifications.notifications_sweep()
    finally:
        broken.close()
    assert len(broken.requests) == 2
    page = browser(alice).get("/team/").content.decode()
    failures = page[page.index('id="webhook-failures"') :]
    assert f"/jobs/{job.pk}/" in failures and "HTTP 500" in failures and ">2</td>" in failures
    assert "failed</span> HTTP 500" in page  # the webhook's last delivery state in the list


def test_another_teams_webhooks_are_invisible_and_404(alice, bob):
    admin_of(alice)
    admin_of(bob)
    bobs = notifications.webhook_create(
        actor=Actor.of(Membership.objects.select_related("team").get(user=bob)),
        url="https://bob.example.com/hook",
        events=["failed"],
    )
    api = api_client(alice)
    assert api.get("/api/v1/team/webhooks").json() == []
    assert api.get(f"/api/v1/team/webhooks/{bobs.pk}/deliveries").status_code == 404
    assert api.delete(f"/api/v1/team/webhooks/{bobs.pk}").status_code == 404
    assert browser(alice).post(f"/team/webhooks/{bobs.pk}/delete/").status_code == 404
    assert "bob.example.com" not in browser(alice).get("/team/").content.decode()
    assert Webhook.objects.filter(pk=bobs.pk).exists()


def test_members_who_are_not_admins_get_403(alice, bob):
    team = alice.memberships.get().team
    hook = notifications.webhook_create(
        actor=Actor.of(Membership.objects.select_related("team").get(user=admin_of(alice))),
        url="https://a.example.com/hook",
        events=["failed"],
    )
    member = user_create(username="mo", password="pw-mo", team=team)
    page, api = browser(member), api_client(member)
    assert page.post("/team/webhooks/", {"url": "https://x.example.com", "events": ["failed"]}).status_code == 403
    assert page.post(f"/team/webhooks/{hook.pk}/delete/").status_code == 403
    refused = api.get("/api/v1/team/webhooks")
    assert refused.status_code == 403 and "admin" in refused.json()["detail"]
    assert (
        api.post(
            "/api/v1/team/webhooks",
            {"url": "https://x.example.com", "events": ["failed"]},
            content_type="application/json",
        ).status_code
        == 403
    )
    assert api.delete(f"/api/v1/team/webhooks/{hook.pk}").status_code == 403
    assert api.get(f"/api/v1/team/webhooks/{hook.pk}/deliveries").status_code == 403
    assert list(Webhook.objects.values_list("pk", flat=True)) == [hook.pk]


@pytest.mark.django_db(transaction=True)
def test_the_maintenance_worker_runs_the_sweep(celery_worker_process, alice, sst2_sample, tiny_model, receiver):
    """The real path: the task is routed to the maintenance queue, a worker process runs it, the receiver hears."""
    from jobs.tasks import send_notifications

    notifications.webhook_create(
        actor=Actor.of(Membership.objects.select_related("team").get(user=admin_of(alice))),
        url=receiver.url,
        events=["failed"],
    )
    job = _failed_job(alice, sst2_sample, tiny_model)
    send_notifications.delay()
    wait_for(lambda: receiver.requests, timeout=60, what="the worker to post the webhook")
    assert receiver.payloads()[0]["job"]["id"] == job.pk
    assert wait_for(
        lambda: WebhookDelivery.objects.filter(status="delivered").count() == 1,
        timeout=30,
        what="the delivery to be recorded",
    )
