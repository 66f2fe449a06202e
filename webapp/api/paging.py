"""Keyset pages in the API: the next page's address in a `Link: <...>; rel="next"` header (RFC 8288, as GitHub's
API does), so a list stays a plain JSON array and a client follows the header until it is absent."""

from django.http import HttpRequest, HttpResponse


def link_next(request: HttpRequest, response: HttpResponse, next_before: int | None) -> None:
    if next_before is None:
        return
    query = request.GET.copy()
    query["before"] = str(next_before)
    response["Link"] = f'<{request.build_absolute_uri(request.path)}?{query.urlencode()}>; rel="next"'


def clamp_limit(limit: int) -> int:
    return max(1, min(limit, 1000))
