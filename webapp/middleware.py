"""request.actor for pages: who acts and in which team (teams.actor), built at most once per request.

Lazily: a request that never asks (static files, the login page, a health check) costs no query. The API
replaces it with the bearer token's actor when it authenticates the request (webapp.api.app.BearerToken)."""

from django.utils.functional import SimpleLazyObject

from teams.actor import actor_for_user


class ActorMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.actor = SimpleLazyObject(lambda: actor_for_user(request.user))
        return self.get_response(request)
