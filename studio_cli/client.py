"""The studio's REST API over httpx: every failure becomes a CliError that says what to do."""

import httpx

from studio_cli import API_PREFIX, PROG
from studio_cli.errors import CliError

# A large upload is checked row by row before the studio answers: wait for that, not just for the bytes.
UPLOAD_TIMEOUT = httpx.Timeout(30.0, read=900.0, write=900.0)
DEFAULT_TIMEOUT = httpx.Timeout(30.0)

HINTS = {
    401: f"the token is missing, wrong or revoked; run `{PROG} login --url URL --token TOKEN` with a valid token",
    403: "your role in the team does not allow this; ask a team admin for a role that does",
    404: f"check the id: `{PROG} datasets` and `{PROG} jobs` list what your team has",
    413: "the file is over the studio's upload limit; split it or ask the admin to raise MAX_UPLOAD_BYTES",
}


def http_error(response: httpx.Response) -> CliError:
    """The API's `detail`, its per-row or per-field errors, and what to do."""
    try:
        body = response.json()
    except ValueError:
        body = None
    status = response.status_code
    if not isinstance(body, dict):
        if status == 404:
            return CliError(
                f"nothing at {response.request.url} (HTTP 404); is the URL the studio's address "
                f"(such as http://127.0.0.1:8000, without {API_PREFIX})?"
            )
        return CliError(
            f"the studio answered HTTP {status} {response.reason_phrase}"
            + ("; its log says why" if status >= 500 else "")
        )
    detail, lines = body.get("detail"), []
    if isinstance(detail, list):  # request validation (422): [{loc, msg}]
        lines = [
            f"{'.'.join(str(p) for p in item.get('loc', [])[2:]) or 'request'}: {item.get('msg')}"
            for item in detail
            if isinstance(item, dict)
        ]
        detail = "the request is not valid"
    errors = body.get("errors")
    if isinstance(errors, dict):  # a job's fields
        lines += [f"{field}: {message}" for field, message in errors.items()]
    elif isinstance(errors, list):  # a dataset's rows
        lines += [
            f"row {e['row']}: {e['message']}" if e.get("row") is not None else str(e.get("message"))
            for e in errors
            if isinstance(e, dict)
        ]
    message = f"{detail or response.reason_phrase} (HTTP {status})"
    if lines:
        message += "\n" + "\n".join(f"  {line}" for line in lines)
    if hint := HINTS.get(status) or ("the studio failed; its log says why" if status >= 500 else ""):
        message += f"\n{hint}"
    return CliError(message)


class Studio:
    """The API at one URL with one token."""

    def __init__(self, url: str, token: str):
        self.url = url
        self.client = httpx.Client(
            base_url=url + API_PREFIX,
            timeout=DEFAULT_TIMEOUT,
            headers={"Authorization": f"Bearer {token}", "User-Agent": "studio-cli"},
        )

    def _unreachable(self, exc: Exception) -> CliError:
        if isinstance(exc, httpx.TimeoutException):
            return CliError(f"the studio at {self.url} did not answer in time ({type(exc).__name__}); try again")
        return CliError(
            f"cannot reach the studio at {self.url} ({exc or type(exc).__name__}); check the address "
            "(--url, STUDIO_URL or login) and that the server runs"
        )

    def request(self, method: str, path: str, *, ok=(200,), **kwargs) -> httpx.Response:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if response.status_code not in ok:
            raise http_error(response)
        return response

    def get(self, path: str, **params):
        return self.request("GET", path, params=params).json()

    def stream(self, method: str, path: str) -> httpx.Response:
        """A streamed response (for downloads), already checked for an error status."""
        try:
            response = self.client.send(self.client.build_request(method, path), stream=True)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if response.status_code != 200:
            response.read()
            response.close()
            raise http_error(response)
        return response
