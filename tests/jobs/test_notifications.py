"""Job notifications (jobs.notifications): signed webhooks to a real HTTP receiver, retries with backoff, emails to
the job's owner, the outbox's once-only guarantee, the upgrade that notifies nothing about the past."""

import json
import socket
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs import notifications, runtime
from jobs.models import Job, Webhook, WebhookDelivery
from teams.actor import Actor
from teams.models import Membership
from tests.factories import job_row
from tests.webhook_receiver import Receiver, verify

FINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def admin(alice):
    Membership.objects.filter(user=alice).update(role=Membership.Role.ADMIN)
    alice.email = "alice@example.com"
    alice.save(update_fields=["email"])
    return Actor.of(Membership.objects.select_related("team", "user").get(user=alice))


@pytest.fixture
def ended(dataset, tiny_model):
    """Make a job of alice's that has just reached a final status, as the runtime leaves it."""

    def make(status: str, **fields) -> Job:
        values = (
            {"metrics": {"accuracy": 0.875, "macro_f1": 0.8}}
            if status == "succeeded"
            else {
                "error_kind": "internal" if status == "failed" else "cancelled",
                "error_message": "the training process crashed" if status == "failed" else "cancelled by a user",
            }
        )
        return job_row(dataset, tiny_model, status=status, **{"name": f"{status} run", **values, **fields})

    return make


def closed_port_url() -> str:
    with socket.socket() as s:  # bound then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/hook"


def test_each_ending_posts_one_signed_delivery_to_each_subscribed_webhook(admin, ended, receiver, bob):
    every = notifications.webhook_create(actor=admin, url=receiver.url, events=list(FINAL))
    only_failed = Receiver()
    try:
        notifications.webhook_create(actor=admin, url=only_failed.url, events=["failed"])
        bobs = Membership.objects.select_related("team", "user").get(user=bob)
        Membership.objects.filter(pk=bobs.pk).update(role=Membership.Role.ADMIN)
        bobs.refresh_from_db()
        bobs_receiver = Receiver()
        notifications.webhook_create(actor=Actor.of(bobs), url=bobs_receiver.url, events=list(FINAL))
        jobs = {status: ended(status) for status in FINAL}

        result = notifications.notifications_sweep()
        assert result == {"jobs": 3, "delivered": 4, "retrying": 0, "failed": 0}
        assert notifications.notifications_sweep() == {"jobs": 0, "delivered": 0, "retrying": 0, "failed": 0}
    finally:
        only_failed.close()
        bobs_receiver.close()

    assert len(receiver.requests) == 3 and bobs_receiver.requests == []  # exactly once each; never another team's
    assert [p["job"]["id"] for p in only_failed.payloads()] == [jobs["failed"].pk]
    for request in receiver.requests:
        headers, payload = request["headers"], json.loads(request["body"])
        assert verify(every.secret, headers, request["body"])
        assert not verify(every.secret + "x", headers, request["body"])
        assert headers["X-Studio-Event"] == payload["event"] == payload["job"]["status"]
        job = jobs[payload["event"]]
        delivery = WebhookDelivery.objects.get(pk=int(headers["X-Studio-Delivery"]))
        assert (delivery.job_id, delivery.webhook_id, delivery.status, delivery.attempts) == (
            job.pk,
            every.pk,
            "delivered",
            1,
        )
        assert payload["team"] == {"id": admin.team_id, "name": "Team A"}
        assert payload["job"]["url"] == f"http://127.0.0.1:8000/jobs/{job.pk}/"
        assert payload["job"]["name"] == job.name and payload["job"]["method"] == "lora"
    succeeded = next(p for p in receiver.payloads() if p["event"] == "succeeded")
    failed = next(p for p in receiver.payloads() if p["event"] == "failed")
    assert succeeded["job"]["metrics"] == {"accuracy": 0.875, "macro_f1": 0.8} and succeeded["job"]["error"] is None
    assert failed["job"]["error"] == {"kind": "internal", "message": "the training process crashed"}
    assert Job.objects.filter(notified_at__isnull=True, status__in=FINAL).count() == 0


def test_the_receivers_check_in_the_docs_accepts_a_real_delivery_and_nothing_altered(admin, ended, receiver):
    docs = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text()
    snippet = textwrap.dedent(docs.split("A receiver checks:", 1)[1].split("```python", 1)[1].split("```", 1)[0])
    scope = {}
    exec(snippet, scope)  # the documented code itself, so the docs stay true
    hook = notifications.webhook_create(actor=admin, url=receiver.url, events=["failed"])
    ended("failed")
    notifications.notifications_sweep()
    (request,) = receiver.requests
    header, body = request["headers"]["X-Studio-Signature"], request["body"]
    assert scope["verify"](hook.secret, header, body)
    assert not scope["verify"](hook.secret, header, body.replace(b"failed", b"succeeded"))
    assert not scope["verify"]("whsec_other", header, body)
    stale = header.replace("t=", "t=1", 1)  # another timestamp: the signature no longer matches
    assert not scope["verify"](hook.secret, stale, body)


def test_a_failing_receiver_is_retried_with_backoff_then_given_up(admin, ended, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    broken = Receiver(status=500)
    try:
        hook = notifications.webhook_create(actor=admin, url=broken.url, events=["failed"])
        ended("failed")
        now = timezone.now()
        assert notifications.notifications_sweep(now=now)["retrying"] == 1
        delivery = WebhookDelivery.objects.get(webhook=hook)
        assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
        assert delivery.next_attempt_at == now + timedelta(seconds=30) and "HTTP 500" in delivery.last_error

        assert notifications.notifications_sweep(now=now + timedelta(seconds=29))["retrying"] == 0  # not due yet
        assert len(broken.requests) == 1
        now += timedelta(seconds=31)
        assert notifications.notifications_sweep(now=now)["retrying"] == 1
        assert WebhookDelivery.objects.get(pk=delivery.pk).next_attempt_at == now + timedelta(seconds=120)
        now += timedelta(seconds=121)
        assert notifications.notifications_sweep(now=now)["failed"] == 1
        assert notifications.notifications_sweep(now=now + timedelta(days=1))["failed"] == 0
        assert len(broken.requests) == 3
        # Each attempt is signed afresh and keeps its delivery id, so a receiver can drop repeats.
        assert len({r["headers"]["X-Studio-Delivery"] for r in broken.requests}) == 1
        assert all(verify(hook.secret, r["headers"], r["body"]) for r in broken.requests)
    finally:
        broken.close()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("failed", 3, 500)


def test_network_errors_and_redirects_count_as_failures(admin, ended):
    mover = Receiver(status=302, headers={"Location": "http://example.com/elsewhere"})
    try:
        moved = notifications.webhook_create(actor=admin, url=mover.url, events=["succeeded"])
        gone = notifications.webhook_create(actor=admin, url=closed_port_url(), events=["succeeded"])
        ended("succeeded")
        assert notifications.notifications_sweep()["retrying"] == 2
    finally:
        mover.close()
    redirected = WebhookDelivery.objects.get(webhook=moved)
    assert redirected.last_status_code == 302 and "redirects are not followed" in redirected.last_error
    assert "example.com/elsewhere" in redirected.last_error
    refused = WebhookDelivery.objects.get(webhook=gone)
    assert refused.last_status_code is None and "ConnectError" in refused.last_error
    assert refused.status == redirected.status == "pending"


def test_the_owner_gets_an_email_for_each_ending_and_nobody_without_an_address(admin, ended, make_member, mailoutbox):
    jobs = {status: ended(status) for status in FINAL}
    no_address = make_member("nomail", "Team N")
    ended("failed", created_by=no_address)
    ended("succeeded", created_by=None)
    notifications.notifications_sweep()
    assert sorted(m.subject for m in mailoutbox) == [
        "Job cancelled run cancelled",
        "Job failed run failed",
        "Job succeeded run succeeded",
    ]
    assert all(m.to == ["alice@example.com"] for m in mailoutbox)
    by_subject = {m.subject.split()[-1]: m.body for m in mailoutbox}
    assert "accuracy: 0.875" in by_subject["succeeded"]
    assert "internal: the training process crashed" in by_subject["failed"]
    assert "cancelled by a user" in by_subject["cancelled"]
    for status, job in jobs.items():
        assert f"http://127.0.0.1:8000/jobs/{job.pk}/" in by_subject[status]
    assert Job.objects.filter(notified_at__isnull=True).count() == 0  # the jobs without a mail are done too


def test_a_broken_mail_server_does_not_hold_back_the_webhooks(admin, ended, receiver, settings, caplog):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", int(closed_port_url().rsplit(":", 1)[1].split("/")[0])
    notifications.webhook_create(actor=admin, url=receiver.url, events=["failed"])
    job = ended("failed")
    assert notifications.notifications_sweep()["delivered"] == 1
    assert len(receiver.requests) == 1 and Job.objects.get(pk=job.pk).notified_at is not None
    assert "could not send 1 job notification email" in caplog.text


def test_a_resumed_job_notifies_again_when_it_ends_again(
    admin, ended, receiver, mailoutbox, django_capture_on_commit_callbacks
):
    notifications.webhook_create(actor=admin, url=receiver.url, events=["failed"])
    job = ended("failed")
    notifications.notifications_sweep()
    with django_capture_on_commit_callbacks(execute=False):
        runtime.job_resume(job=job, user=admin.user)
    assert Job.objects.get(pk=job.pk).notified_at is None
    assert notifications.notifications_sweep()["jobs"] == 0  # queued again: nothing to say yet
    Job.objects.filter(pk=job.pk).update(
        status=Job.Status.FAILED, error_kind="internal", error_message="again", finished_at=timezone.now()
    )
    notifications.notifications_sweep()
    assert [p["job"]["error"]["message"] for p in receiver.payloads()] == ["the training process crashed", "again"]
    assert len(mailoutbox) == 2


def test_the_sweep_runs_a_fixed_number_of_queries_however_many_jobs_ended(
    admin, ended, receiver, django_assert_max_num_queries
):
    notifications.webhook_create(actor=admin, url=receiver.url, events=list(FINAL))
    notifications.webhook_create(actor=admin, url=receiver.url + "/2", events=["failed"])
    for _ in range(2):
        ended("failed")
    with CaptureQueriesContext(connection) as few:
        assert notifications.notifications_sweep()["jobs"] == 2
    for i in range(60):
        ended(FINAL[i % 3])
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert notifications.notifications_sweep()["jobs"] == 60
    assert len(few.captured_queries) <= 16


def test_the_webhook_form_refuses_what_cannot_be_posted(admin):
    for url in ("ftp://example.com/x", "example.com/hook", "", "javascript:alert(1)"):
        with pytest.raises(notifications.WebhookRefused, match="http:// or https://"):
            notifications.webhook_create(actor=admin, url=url, events=["failed"])
    with pytest.raises(notifications.WebhookRefused, match="succeeded, failed, cancelled"):
        notifications.webhook_create(actor=admin, url="https://example.com/h", events=[])
    with pytest.raises(notifications.WebhookRefused, match="'started' is not one"):
        notifications.webhook_create(actor=admin, url="https://example.com/h", events=["started"])
    assert not Webhook.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_upgrading_does_not_notify_jobs_that_ended_before(admin, ended, dataset, tiny_model, mailoutbox):
    old = ended("succeeded")
    waiting = job_row(dataset, tiny_model, status=Job.Status.QUEUED)  # queued, yet nothing sent to a worker
    executor = MigrationExecutor(connection)
    executor.migrate([("jobs", "0008_job_device")])  # before notifications existed
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert Job.objects.get(pk=old.pk).notified_at == old.finished_at
    assert Job.objects.get(pk=waiting.pk).notified_at is None
    notifications.webhook_create(actor=admin, url=closed_port_url(), events=list(FINAL))
    assert notifications.notifications_sweep(now=timezone.now())["jobs"] == 0
    assert not WebhookDelivery.objects.exists() and mailoutbox == []


def test_internal_addresses_are_refused_at_creation_and_at_delivery(admin, ended, receiver, settings):
    settings.WEBHOOK_ALLOW_INTERNAL = False
    for url in (
        "http://127.0.0.1:6379/",
        "http://localhost:5432/",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.5/hook",
        "http://[::1]:8000/",
    ):
        with pytest.raises(notifications.WebhookRefused, match="internal address"):
            notifications.webhook_create(actor=admin, url=url, events=["succeeded"])
    assert not Webhook.objects.exists()
    # Allowed when it was made, refused when it is sent (the name may point elsewhere by then): nothing is posted.
    settings.WEBHOOK_ALLOW_INTERNAL = True
    notifications.webhook_create(actor=admin, url=receiver.url, events=["succeeded"])
    settings.WEBHOOK_ALLOW_INTERNAL = False
    ended("succeeded")
    assert notifications.notifications_sweep()["retrying"] == 1
    assert receiver.requests == []
    assert "internal address" in WebhookDelivery.objects.get().last_error


def test_a_receiver_that_drips_its_answer_cannot_hold_the_sweep(admin, ended, settings):
    import threading
    import time

    settings.WEBHOOK_TIMEOUT_SECONDS = 1
    stop = threading.Event()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def drip():  # answers one byte every 0.5 s: no single read ever times out
        conn, _ = server.accept()
        while not stop.is_set():
            try:
                conn.sendall(b"H")
            except OSError:
                return
            time.sleep(0.5)
        conn.close()

    threading.Thread(target=drip, daemon=True).start()
    notifications.webhook_create(
        actor=admin, url=f"http://127.0.0.1:{server.getsockname()[1]}/hook", events=["succeeded"]
    )
    ended("succeeded")
    started = time.monotonic()
    try:
        assert notifications.notifications_sweep()["retrying"] == 1
        assert time.monotonic() - started < 10  # the overall deadline (3 x the timeout), not forever
    finally:
        stop.set()
        server.close()
    assert "no complete answer within 3 s" in WebhookDelivery.objects.get().last_error


def test_an_owner_who_left_the_team_gets_no_more_mail_about_its_jobs(admin, ended, mailoutbox):
    ended("succeeded")
    Membership.objects.filter(pk=admin.membership.pk).delete()
    notifications.notifications_sweep()
    assert mailoutbox == []
