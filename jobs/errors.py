"""The refusals jobs' writes raise: the shared kinds (teams.errors) plus the one that carries per-field errors."""

from teams.errors import Conflict, Forbidden, NotFound, Refused

__all__ = ["Conflict", "Forbidden", "NotFound", "Refused", "ValidationFailed"]


class ValidationFailed(Refused):
    """Input a user must fix. `errors` maps a field name (or "__all__") to a message, or lists row errors."""

    def __init__(self, message: str, *, errors=None):
        super().__init__(message)
        self.message = message
        self.errors = errors if errors is not None else {}
