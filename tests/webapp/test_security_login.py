"""Login rate limiting (django-axes): LOGIN_FAILURE_LIMIT wrong passwords lock that username from that address,
with a page that says so; other users and other addresses, the API's bearer tokens and the test client's
logins keep working."""

from datetime import timedelta

from axes.models import AccessAttempt
from django.conf import settings
from django.http import HttpRequest
from django.test import Client, override_settings
from django.utils import timezone

from tests.conftest import api_client


def _login(client: Client, username: str, password: str, ip: str = "127.0.0.1"):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def _logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def _lock_out(client: Client, username: str, ip: str = "127.0.0.1") -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = _login(client, username, "wrong", ip)
        assert response.status_code == 200 and b"didn't match" in response.content
    response = _login(client, username, "wrong", ip)  # the one that reaches the limit
    assert response.status_code == 429


def test_the_limit_and_cool_off_come_from_the_environment_defaults():
    assert settings.AXES_FAILURE_LIMIT == 5
    assert settings.AXES_COOLOFF_TIME == timedelta(minutes=15)
    assert settings.AXES_LOCKOUT_PARAMETERS == [["username", "ip_address"]]


def test_wrong_passwords_up_to_the_limit_then_the_right_one_is_refused_with_a_message(alice):
    client = Client()
    _lock_out(client, "alice")
    response = _login(client, "alice", "pw-alice")
    assert response.status_code == 429
    text = response.content.decode()
    assert "Too many failed logins" in text and "alice" in text and "15 minutes" in text, text
    assert not _logged_in(client)
    assert client.get("/jobs/").status_code == 302  # still sent to the login page


def test_fewer_failures_than_the_limit_do_not_lock(alice):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, "alice", "wrong")
    response = _login(client, "alice", "pw-alice")
    assert response.status_code == 302 and _logged_in(client)


def test_the_lock_holds_one_username_from_one_address(alice, bob):
    _lock_out(Client(), "alice", ip="10.0.0.66")
    # Another user from the attacker's address is not locked...
    other_user = Client()
    assert _login(other_user, "bob", "pw-bob", ip="10.0.0.66").status_code == 302 and _logged_in(other_user)
    # ...and neither is alice from her own address: an attacker cannot lock everyone out.
    alice_elsewhere = Client()
    assert _login(alice_elsewhere, "alice", "pw-alice", ip="10.0.0.7").status_code == 302
    assert _logged_in(alice_elsewhere)


@override_settings(TRUSTED_PROXIES=1)
def test_behind_a_trusted_proxy_the_forwarded_address_is_the_client(alice):
    # Every request comes from the proxy's address; the proxy appends the client's to X-Forwarded-For.
    def through_proxy(client, password, forwarded):
        return client.post(
            "/login/",
            {"username": "alice", "password": password},
            REMOTE_ADDR="10.9.9.9",
            headers={"X-Forwarded-For": forwarded},
        )

    attacker = Client()
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        # A forged entry of the attacker's own stays on the left, where it is not read.
        through_proxy(attacker, "wrong", f"192.0.2.{attempt}, 10.0.0.66")
    assert through_proxy(attacker, "pw-alice", "10.0.0.66").status_code == 429
    alice_client = Client()
    assert through_proxy(alice_client, "pw-alice", "10.0.0.7").status_code == 302 and _logged_in(alice_client)


def test_the_lock_ends_after_the_cool_off(alice):
    _lock_out(Client(), "alice")
    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=5))
    client = Client()
    assert _login(client, "alice", "pw-alice").status_code == 302 and _logged_in(client)


def test_the_api_is_unaffected_by_a_locked_login(alice):
    token_client = api_client(alice)
    _lock_out(Client(), "alice")
    assert token_client.get("/api/v1/datasets").status_code == 200
    # Bad bearer tokens are refused without counting as password failures.
    attempts = AccessAttempt.objects.count()
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        assert Client(headers={"Authorization": "Bearer nope"}).get("/api/v1/datasets").status_code == 401
    assert AccessAttempt.objects.count() == attempts
    assert token_client.get("/api/v1/datasets").status_code == 200


def test_test_client_logins_still_work(alice):
    client = Client()
    client.force_login(alice)
    assert client.get("/datasets/").status_code == 200
    # The axes backend needs the request (django-axes docs): the test client's login() passes one like this.
    client = Client()
    assert client.login(request=HttpRequest(), username="alice", password="pw-alice")
    assert client.get("/datasets/").status_code == 200
