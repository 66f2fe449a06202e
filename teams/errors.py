"""The studio's refusals, shared by every app (teams is the lowest app, so jobs and webapp raise them too).

The HTTP layer maps each kind to one status: NotFound 404, Forbidden 403, Conflict 409, any other Refused 400.
The message always says what to change.
"""

from django.core.exceptions import PermissionDenied


class Refused(Exception):
    """A request the studio will not carry out as asked."""


class NotFound(Refused):
    """Not there, or not visible to the one asking (another team's object reads the same)."""


class Conflict(Refused):
    """Refused because of the current state (busy, already done, in use); may work later."""


class Forbidden(Refused, PermissionDenied):
    """The actor's role does not allow it (PermissionDenied: Django's views answer 403 too)."""
