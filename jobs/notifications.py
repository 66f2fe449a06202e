"""Job notifications: an email to the job's owner and a signed POST to each of the team's webhooks when a job
ends (succeeded, failed, cancelled).

An outbox, not a hook in the runtime's fenced writes: a periodic sweep (`notifications_sweep`, beat on the
maintenance queue, also kicked when a worker's job ends) claims final jobs whose `notified_at` is empty with
SKIP LOCKED, writes one `WebhookDelivery` row per matching webhook and stamps `notified_at` in one
transaction, then sends the emails: a worker that dies right after a job ends loses no webhook, and two sweeps
never notify a job twice. The same sweep posts due deliveries and retries failures with backoff; receivers de-duplicate on
`X-Studio-Delivery` (a sweep that dies mid-post means the delivery is sent again).
"""

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from teams.actor import Actor
from teams.audit import audit_record
from teams.models import Membership
from teams.permissions import require

from . import dispatch
from .errors import Refused
from .models import Job, Webhook, WebhookDelivery
from .webhook_address import AddressRefused, internal_address, pinned_client, refusal

log = logging.getLogger(__name__)

# Seconds before the 2nd, 3rd, 4th and 5th attempt (later ones wait the last figure).
BACKOFF_SECONDS = (30, 120, 600, 3600)
JOBS_PER_SWEEP = 200
DELIVERIES_PER_SWEEP = 50


class WebhookRefused(Refused):
    pass


# --- webhooks (team admins) --------------------------------------------------------------------------------


def refuse_internal(url: str) -> None:
    """At creation: a URL whose host resolves to an internal address is refused (checked again at each post)."""
    if settings.WEBHOOK_ALLOW_INTERNAL:
        return
    host = urlsplit(url).hostname or ""
    if (address := internal_address(host)) is not None:
        raise WebhookRefused(refusal(host, address))


def _clean_url(url: str) -> str:
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        hostname, _ = parts.hostname, parts.port  # a broken netloc ("http://[::1/") or port raises here
    except ValueError:
        parts, hostname = None, None
    if parts is None or parts.scheme not in ("http", "https") or not hostname:
        raise WebhookRefused(
            f"{url or 'an empty URL'!r} is not a web address; give a full http:// or https:// URL, "
            "such as https://example.com/hooks/studio"
        )
    if len(url) > Webhook._meta.get_field("url").max_length:
        raise WebhookRefused("the URL is longer than 500 characters; use a shorter one")
    refuse_internal(url)
    return url


def _clean_events(events) -> list[str]:
    events = sorted(set(events or []))
    unknown = [e for e in events if e not in Webhook.EVENTS]
    if unknown or not events:
        raise WebhookRefused(
            f"choose the events to send from {', '.join(Webhook.EVENTS)}"
            + (f" ({', '.join(map(repr, unknown))} is not one)" if unknown else "")
        )
    return events


def webhook_create(*, actor: Actor, url: str, events) -> Webhook:
    """A new webhook with a random signing secret; the caller shows `webhook.secret` once."""
    require(actor, actor.team, Membership.Role.ADMIN)
    url, events = _clean_url(url), _clean_events(events)
    with transaction.atomic():
        webhook = Webhook.objects.create(
            team=actor.team, url=url, events=events, created_by=actor.user, secret="whsec_" + secrets.token_urlsafe(32)
        )
        audit_record(
            team_id=actor.team_id,
            user=actor.user,
            action="webhook.create",
            target=url,
            events=events,
            webhook=webhook.pk,
        )
    return webhook


def webhook_delete(*, actor: Actor, webhook: Webhook) -> None:
    """Delete a webhook of the actor's team and its deliveries (pending ones are not sent)."""
    # Callers look the webhook up team-scoped; the team check only guards a wrong call.
    require(actor, webhook.team_id, Membership.Role.ADMIN)
    with transaction.atomic():
        audit_record(
            team_id=actor.team_id, user=actor.user, action="webhook.delete", target=webhook.url, webhook=webhook.pk
        )
        webhook.delete()


# --- the sweep ---------------------------------------------------------------------------------------------


def notifications_sweep(*, now: datetime | None = None) -> dict:
    """Notify the jobs that ended since the last sweep, then post the deliveries that are due."""
    now = now or timezone.now()
    notified = jobs_notify(now=now)
    return {"jobs": notified, **deliveries_send(now=now)}


def notifications_kick() -> None:
    """Ask the maintenance worker for a sweep now (a job just ended); beat sweeps anyway if this is lost."""
    try:
        dispatch.publish(dispatch.SEND_NOTIFICATIONS)
    except Exception:  # a broker that is down must not fail the caller
        log.warning("could not ask for a notification sweep; beat will run one", exc_info=True)


def job_url(job_id: int) -> str:
    return settings.STUDIO_BASE_URL + reverse("job-detail", args=[job_id])


def job_payload(job: Job) -> dict:
    return {
        "event": job.status,
        "job": {
            "id": job.pk,
            "name": job.name,
            "status": job.status,
            "method": job.method,
            "metrics": job.metrics,
            "error": {"kind": job.error_kind, "message": job.error_message} if job.error_kind else None,
            "url": job_url(job.pk),
        },
        "team": {"id": job.team_id, "name": job.team.name},
    }


def jobs_notify(*, now: datetime) -> int:
    """Claim final jobs not yet notified: write their deliveries, send their emails, stamp them. A fixed number
    of queries however many jobs ended (up to JOBS_PER_SWEEP a sweep)."""
    with transaction.atomic():
        jobs = list(
            Job.objects.filter(status__in=Job.FINAL, notified_at__isnull=True)
            .select_related("team", "created_by")
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("finished_at", "pk")[:JOBS_PER_SWEEP]
        )
        if not jobs:
            return 0
        hooks: dict[int, list[Webhook]] = {}
        for hook in Webhook.objects.filter(team_id__in={job.team_id for job in jobs}, active=True):
            hooks.setdefault(hook.team_id, []).append(hook)
        WebhookDelivery.objects.bulk_create(
            [
                WebhookDelivery(webhook=hook, job=job, event=job.status, payload=job_payload(job), next_attempt_at=now)
                for job in jobs
                for hook in hooks.get(job.team_id, [])
                if job.status in hook.events
            ]
        )
        Job.objects.filter(pk__in=[job.pk for job in jobs]).update(notified_at=now)
    # After the commit: a mail server must never hold the job rows (or, on SQLite, the whole database). A sweep
    # that dies right here loses these mails; the webhooks, written above, are the durable channel.
    _send_emails(jobs)
    return len(jobs)


def _email(job: Job) -> EmailMessage:
    name = " ".join((job.name or f"#{job.pk}").split())  # no line breaks in a header
    lines = [f'Your job "{name}" (#{job.pk}, {job.method}) {job.status}.', ""]
    if job.status == Job.Status.SUCCEEDED:
        lines += [
            f"  {key}: {value:.4g}" if isinstance(value, float) else f"  {key}: {value}"
            for key, value in sorted((job.metrics or {}).items())
            if not isinstance(value, (dict, list))
        ]
    elif job.error_message:
        lines.append(f"{job.error_kind or 'error'}: {job.error_message}")
    lines += ["", f"Open it: {job_url(job.pk)}"]
    return EmailMessage(subject=f"Job {name} {job.status}", body="\n".join(lines), to=[job.created_by.email])


def _send_emails(jobs: list[Job]) -> None:
    # Only to owners still active and still in the job's team: someone who left gets no more of its news.
    members = set(
        Membership.objects.filter(
            team_id__in={job.team_id for job in jobs},
            user_id__in={job.created_by_id for job in jobs},
            user__is_active=True,
        ).values_list("team_id", "user_id")
    )
    mails = [
        _email(job)
        for job in jobs
        if job.created_by is not None and job.created_by.email and (job.team_id, job.created_by_id) in members
    ]
    if not mails:
        return
    try:  # one connection for the batch
        get_connection().send_messages(mails)
    except Exception:  # a broken mail server must not hold back the webhooks; the log says why
        log.exception("could not send %d job notification email(s)", len(mails))


# --- deliveries --------------------------------------------------------------------------------------------


def signature(*, secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of "<timestamp>.<body>" (docs/architecture.md shows a receiver's check)."""
    return hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def _post(client: httpx.Client, delivery: WebhookDelivery) -> tuple[int | None, str]:
    """(HTTP status or None, error or ""). The body is never read: a receiver cannot make us download much."""
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    timestamp = int(time.time())
    signed = signature(secret=delivery.webhook.secret, timestamp=timestamp, body=body)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "fine-tuning-studio-webhooks",
        "X-Studio-Event": delivery.event,
        "X-Studio-Delivery": str(delivery.pk),
        "X-Studio-Signature": f"t={timestamp},v1={signed}",
    }
    try:
        with client.stream("POST", delivery.webhook.url, content=body, headers=headers) as response:
            code = response.status_code
            if 200 <= code < 300:
                return code, ""
            if response.is_redirect:
                return code, (
                    f"HTTP {code}: redirects are not followed; give the final URL "
                    f"({response.headers.get('location', '')})"
                )
            return code, f"HTTP {code} {response.reason_phrase}".strip()
    except Exception as exc:  # network errors, timeouts, TLS: all retried
        return None, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _post_all(due: list[WebhookDelivery], timeout: float) -> list[tuple[int | None, str]]:
    """Post every delivery at once, each in a daemon thread, and stop waiting after an overall deadline: httpx's
    timeout bounds each socket read, not a receiver that drips a byte every few seconds, and the maintenance
    queue must not wait on one."""
    deadline = timeout * 3
    results: list[tuple[int | None, str]] = [(None, f"no complete answer within {deadline:g} s")] * len(due)

    def post(index: int, delivery: WebhookDelivery) -> None:
        # Resolved and checked again now (the name may point elsewhere than at creation), then pinned.
        try:
            client = pinned_client(
                delivery.webhook.url, timeout=timeout, allow_internal=settings.WEBHOOK_ALLOW_INTERNAL
            )
        except AddressRefused as exc:
            results[index] = (None, str(exc))
            return
        with client:
            results[index] = _post(client, delivery)

    threads = [threading.Thread(target=post, args=(i, d), daemon=True) for i, d in enumerate(due)]
    for thread in threads:
        thread.start()
    end = time.monotonic() + deadline
    for thread in threads:
        thread.join(max(0.0, end - time.monotonic()))
    return list(results)  # stragglers close their own clients as their sockets time out


def deliveries_send(*, now: datetime) -> dict:
    """Post the deliveries that are due; a failure waits BACKOFF_SECONDS and is retried until
    WEBHOOK_MAX_ATTEMPTS, then it is `failed`. Claimed rows are pushed ahead first, so another sweep skips them
    and a sweep that dies leaves them due again once its claim runs out."""
    timeout = settings.WEBHOOK_TIMEOUT_SECONDS
    claim = timedelta(seconds=timeout * 3 + 60)  # the posts' overall deadline (_post_all), and a margin
    with transaction.atomic():
        due = list(
            WebhookDelivery.objects.filter(
                status=WebhookDelivery.Status.PENDING, next_attempt_at__lte=now, webhook__active=True
            )
            .select_related("webhook")
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("next_attempt_at", "pk")[:DELIVERIES_PER_SWEEP]
        )
        if not due:
            return {"delivered": 0, "retrying": 0, "failed": 0}
        WebhookDelivery.objects.filter(pk__in=[d.pk for d in due]).update(next_attempt_at=now + claim)
    results = _post_all(due, timeout)
    counts = {"delivered": 0, "retrying": 0, "failed": 0}
    for delivery, (code, error) in zip(due, results):
        delivery.attempts += 1
        delivery.last_status_code, delivery.last_error = code, error[:500]
        if not error:
            delivery.status, delivery.delivered_at = WebhookDelivery.Status.DELIVERED, timezone.now()
            counts["delivered"] += 1
        elif delivery.attempts >= settings.WEBHOOK_MAX_ATTEMPTS:
            delivery.status = WebhookDelivery.Status.FAILED
            counts["failed"] += 1
        else:
            wait = BACKOFF_SECONDS[min(delivery.attempts, len(BACKOFF_SECONDS)) - 1]
            delivery.next_attempt_at = now + timedelta(seconds=wait)
            counts["retrying"] += 1
    # One statement for the batch; a row deleted meanwhile (its webhook was) is simply not updated.
    WebhookDelivery.objects.bulk_update(
        due, ["attempts", "status", "next_attempt_at", "last_status_code", "last_error", "delivered_at"]
    )
    if counts["failed"]:
        log.warning("%d webhook deliveries failed after %d attempts", counts["failed"], settings.WEBHOOK_MAX_ATTEMPTS)
    return counts
