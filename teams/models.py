"""The teams app's models: teams, their members and roles, API tokens, invitations and the audit log."""

import hashlib
import secrets

from django.conf import settings
from django.db import models


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Quotas (None: no limit), enforced under a lock on this row (jobs.quotas) so concurrent submissions
    # cannot slip past them. Compute hours are training hours on any device (GPU or CPU).
    max_concurrent_jobs = models.PositiveIntegerField(null=True, blank=True)
    compute_hours_per_month = models.FloatField(null=True, blank=True)
    max_storage_bytes = models.BigIntegerField(null=True, blank=True)

    def __str__(self):
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner"
        ADMIN = "admin"
        MEMBER = "member"
        VIEWER = "viewer"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    created_at = models.DateTimeField(auto_now_add=True)
    # The team a user works in is the one they switched to last (else the first joined): kept in the database,
    # not the session, so every browser of the user agrees on it.
    selected_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="unique_team_member")]


class AuditEntry(models.Model):
    """Who did what in a team: uploads, jobs, cancels, resumes, downloads, member and quota changes."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="audit_entries")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    action = models.CharField(max_length=40)
    target = models.CharField(max_length=100, blank=True)  # e.g. "job 12", "dataset 3", "user bob"
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["team", "-created_at"])]


def hash_token(raw: str) -> str:
    # Tokens are random 256-bit strings, so a plain sha256 suffices (no slow KDF needed).
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    """A per-user API token scoped to one team; only its hash is stored, the raw token is shown once. It stops
    working when revoked or when its user leaves the team."""

    PREFIX = "fts_"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    # null only for tokens made before tokens had a team: those are refused until replaced.
    team = models.ForeignKey(Team, on_delete=models.CASCADE, null=True, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True)
    key_hash = models.CharField(max_length=64, unique=True)
    hint = models.CharField(max_length=12)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    @classmethod
    def new_raw(cls) -> str:
        return cls.PREFIX + secrets.token_urlsafe(32)


class Invitation(models.Model):
    """A link that adds whoever opens it (signed in, or signing up) to a team in a role. Single use, expires,
    revocable; only the hash of its secret is stored. With an email address, the link is also mailed there."""

    PREFIX = "inv_"

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invitations")
    role = models.CharField(max_length=10, choices=Membership.Role.choices, default=Membership.Role.MEMBER)
    email = models.EmailField(blank=True)
    key_hash = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    accepted_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    @classmethod
    def new_raw(cls) -> str:
        return cls.PREFIX + secrets.token_urlsafe(32)
