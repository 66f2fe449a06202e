"""The client's address for login rate limiting (AXES_CLIENT_IP_CALLABLE).

Behind a proxy REMOTE_ADDR is the proxy's, so every client would share one address. With TRUSTED_PROXIES=n the
address is the n-th from the right of X-Forwarded-For: each trusted proxy appends the address it saw, and whatever
a client wrote into the header itself stays further left, so it cannot pick its own address. Leave it 0 when
clients can reach the web server directly: they could then send any X-Forwarded-For.
"""

from django.conf import settings


def client_ip(request) -> str:
    proxies = settings.TRUSTED_PROXIES
    if proxies:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR", "")
