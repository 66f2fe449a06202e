"""Issue 18, row 15: a per-address login limit on top of axes' per (username, address) lockout, so one password
sprayed over many usernames from one address is stopped; and a password reset by e-mail (Django's own views),
which tells no one whether an address has an account and whose link works once."""

import re

from django.conf import settings
from django.core import mail
from django.test import Client, override_settings


def _login(client, username, password, ip="198.51.100.7"):
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


@override_settings(LOGIN_ADDRESS_FAILURE_LIMIT=6)
def test_spraying_many_usernames_from_one_address_is_stopped(alice):
    client = Client()
    for n in range(6):  # one try each: axes' per-username lockout never trips
        assert _login(client, f"user{n}", "Summer2026!").status_code == 200
    response = _login(client, "alice", "pw-alice")  # even the right password, from that address
    assert response.status_code == 429 and b"from this address, over several usernames" in response.content
    assert "_auth_user_id" not in client.session
    other = Client()  # another address is not affected
    assert _login(other, "alice", "pw-alice", ip="203.0.113.9").status_code == 302


def _reset_link(body: str) -> str:
    return re.search(r"https?://[^/\s]+(/password-reset/[^\s]+/)", body).group(1)


def test_a_forgotten_password_is_reset_by_e_mail_once(alice):
    alice.email = "alice@example.com"
    alice.save(update_fields=["email"])
    client = Client()
    assert b'id="forgot-password"' in client.get("/login/").content
    response = client.post("/password-reset/", {"email": "alice@example.com"}, follow=True)
    assert b"Check your e-mail" in response.content and b"3 hours" in response.content
    [message] = mail.outbox
    assert message.to == ["alice@example.com"] and settings.STUDIO_BASE_URL in message.body
    link = _reset_link(message.body)
    form = client.get(link, follow=True)  # Django moves the token into the session, then shows the form
    assert b"Choose a new password" in form.content
    done = client.post(
        form.redirect_chain[-1][0], {"new_password1": "a-new-long-secret-9", "new_password2": "a-new-long-secret-9"}
    )
    assert done.status_code == 302 and done["Location"] == "/password-reset/done/"
    assert _login(Client(), "alice", "a-new-long-secret-9").status_code == 302
    assert _login(Client(), "alice", "pw-alice", ip="192.0.2.99").status_code == 200  # the old one is gone
    again = Client().get(link, follow=True)
    assert b"This link no longer works" in again.content


def test_an_unknown_address_gets_the_same_answer_and_no_mail(db):
    response = Client().post("/password-reset/", {"email": "nobody@example.com"}, follow=True)
    assert b"Check your e-mail" in response.content and mail.outbox == []


@override_settings(LOGIN_ADDRESS_FAILURE_LIMIT=3)
def test_the_address_limit_holds_on_the_admin_login_too(alice):
    alice.is_staff = True
    alice.save(update_fields=["is_staff"])
    client = Client()
    for n in range(3):
        _login(client, f"user{n}", "Summer2026!")
    response = client.post("/admin/login/", {"username": "alice", "password": "pw-alice"}, REMOTE_ADDR="198.51.100.7")
    assert response.status_code == 200 and "_auth_user_id" not in client.session  # the form again, not logged in
    elsewhere = Client()
    elsewhere.post("/admin/login/", {"username": "alice", "password": "pw-alice"}, REMOTE_ADDR="203.0.113.9")
    assert "_auth_user_id" in elsewhere.session
