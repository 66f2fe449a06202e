"""The NinjaAPI instance: bearer-token auth, one answer per refusal kind, and the resource routers mounted."""

from django.db import DataError
from ninja import NinjaAPI
from ninja.security import HttpBearer

from teams.errors import Conflict, Forbidden, NotFound, Refused
from teams.services import api_token_authenticate

from . import access, base_models, datasets, exports, jobs, members, methods, playground, sweeps, team, webhooks


class BearerToken(HttpBearer):
    """The token's actor: its user, acting in the token's own team only (request.actor), whatever team the user
    works in on the pages."""

    def authenticate(self, request, token: str):
        actor = api_token_authenticate(raw=token)
        if actor is not None:
            request.user, request.actor = actor.user, actor
        return actor


api = NinjaAPI(title="Fine-tuning studio API", version="1", auth=BearerToken(), urls_namespace="api")


@api.exception_handler(Refused)
def _refused(request, exc):
    # A refusal an endpoint does not answer itself: one status per kind (teams.errors).
    status = (
        403
        if isinstance(exc, Forbidden)
        else 404
        if isinstance(exc, NotFound)
        else 409
        if isinstance(exc, Conflict)
        else 400
    )
    return api.create_response(request, {"detail": str(exc)}, status=status)


@api.exception_handler(UnicodeEncodeError)
def _lone_surrogate(request, exc):
    # A JSON body may spell a lone surrogate ("\\ud800"), which is not text: nothing can encode it to store it.
    return api.create_response(
        request,
        {
            "detail": "text cannot contain lone surrogates (\\u escapes such as \\ud800 that are not "
            "part of a pair); remove them and send the request again"
        },
        status=400,
    )


@api.exception_handler(DataError)
def _nul_character(request, exc):
    # psycopg refuses a NUL character in text before sending anything (the transaction stays usable): the
    # client sent one, in a body, form, query or path value. Any other data error is the studio's own fault.
    if "NUL (0x00)" not in str(exc):
        raise exc
    return api.create_response(
        request,
        {"detail": "text cannot contain NUL (\\u0000) characters; remove them and send the request again"},
        status=400,
    )


# Mounted at the root of /api/v1/: each router's paths are absolute.
for module in (datasets, base_models, methods, jobs, exports, playground, team, members, access, webhooks, sweeps):
    api.add_router("", module.router)
