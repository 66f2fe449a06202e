"""The audit log's one write. Services call it inside their own transaction, so an entry exists exactly when
what it records happened."""

from .models import AuditEntry


def audit_record(*, team_id: int, user, action: str, target: str = "", **detail) -> AuditEntry:
    return AuditEntry.objects.create(
        team_id=team_id,
        user=user if user is not None and user.is_authenticated else None,
        action=action,
        target=target[:100],
        detail=detail,
    )
