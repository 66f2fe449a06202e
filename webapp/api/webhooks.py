"""API endpoints for the team's webhooks (admins). Another team's
webhook is a 404."""

from datetime import datetime
from typing import Any, Literal

from ninja import Field, Router, Schema, Status

from jobs import notifications, selectors
from jobs.models import Webhook
from teams.models import Membership
from teams.permissions import require

ADMIN = Membership.Role.ADMIN

router = Router(tags=["webhooks"])

Event = Literal["succeeded", "failed", "cancelled"]


class WebhookIn(Schema):
    url: str = Field(description="an http:// or https:// URL; redirects are not followed")
    events: list[Event] = Field(list(Webhook.EVENTS), description="which job endings to send")


class LastDelivery(Schema):
    status: str
    status_code: int | None
    error: str
    at: datetime


class WebhookOut(Schema):
    id: int
    url: str
    events: list[str]
    active: bool
    created_at: datetime
    last_delivery: LastDelivery | None


class NewWebhook(WebhookOut):
    secret: str = Field(description="the HMAC-SHA256 signing key: shown only in this answer")


class DeliveryOut(Schema):
    id: int
    job: int
    event: str
    status: str = Field(description="pending, delivered or failed (gave up after WEBHOOK_MAX_ATTEMPTS)")
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str
    created_at: datetime
    delivered_at: datetime | None
    payload: dict[str, Any]


class Problem(Schema):
    detail: str


def _webhook_out(hook: Webhook) -> dict:
    last = None
    if getattr(hook, "last_status", None):
        last = {
            "status": hook.last_status,
            "status_code": hook.last_status_code,
            "error": hook.last_error or "",
            "at": hook.last_delivery_at,
        }
    return {
        "id": hook.pk,
        "url": hook.url,
        "events": hook.events,
        "active": hook.active,
        "created_at": hook.created_at,
        "last_delivery": last,
    }


@router.get("/team/webhooks", response=list[WebhookOut])
def webhook_list(request):
    """The team's webhooks with their latest delivery (admins)."""
    actor = require(request.actor, request.actor.team, ADMIN)
    return [_webhook_out(hook) for hook in selectors.webhook_list(team=actor.team)]


@router.post("/team/webhooks", response={201: NewWebhook, 400: Problem})
def webhook_create(request, payload: WebhookIn):
    """Add a webhook; the answer holds its signing secret, shown this once (admins)."""
    actor = require(request.actor, request.actor.team, ADMIN)
    try:
        hook = notifications.webhook_create(actor=actor, url=payload.url, events=payload.events)
    except notifications.WebhookRefused as exc:
        return Status(400, {"detail": str(exc)})
    return Status(201, {**_webhook_out(hook), "secret": hook.secret})


@router.delete("/team/webhooks/{webhook_id}", response={204: None})
def webhook_delete(request, webhook_id: int):
    actor = require(request.actor, request.actor.team, ADMIN)
    notifications.webhook_delete(actor=actor, webhook=selectors.webhook_get(team=actor.team, webhook_id=webhook_id))
    return Status(204, None)


@router.get("/team/webhooks/{webhook_id}/deliveries", response=list[DeliveryOut])
def webhook_deliveries(request, webhook_id: int, limit: int = 50):
    """The webhook's latest deliveries, newest first (admins)."""
    actor = require(request.actor, request.actor.team, ADMIN)
    hook = selectors.webhook_get(team=actor.team, webhook_id=webhook_id)
    return [
        {
            "id": d.pk,
            "job": d.job_id,
            "event": d.event,
            "status": d.status,
            "attempts": d.attempts,
            "next_attempt_at": d.next_attempt_at if d.status == d.Status.PENDING else None,
            "last_status_code": d.last_status_code,
            "last_error": d.last_error,
            "created_at": d.created_at,
            "delivered_at": d.delivered_at,
            "payload": d.payload,
        }
        for d in selectors.webhook_deliveries(webhook=hook, limit=max(1, min(limit, 500)))
    ]
