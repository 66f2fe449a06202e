"""Production settings (SECURE=true behind a TLS proxy) pass `check --deploy` with no warning, and their cookies
and headers really are secure; the embedded default (plain http on 127.0.0.1) keeps working without them."""

import json
import os
import secrets
import subprocess
import sys

import pytest
from django.test import Client, override_settings

from tests.conftest import REPO

SECURITY_SETTINGS = [
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SESSION_COOKIE_HTTPONLY",
    "SESSION_COOKIE_SAMESITE",
    "CSRF_COOKIE_SAMESITE",
    "SECURE_SSL_REDIRECT",
    "SECURE_REDIRECT_EXEMPT",
    "SECURE_PROXY_SSL_HEADER",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
]


def _env(tmp_path, **extra) -> dict:
    """The real settings module (not the tests'), with its own STUDIO_HOME and this run's database and broker."""
    # Without what a test run sets for itself: the browser tests' DJANGO_ALLOW_ASYNC_UNSAFE is a deploy error.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SECURE", "DEBUG", "SECRET_KEY", "ALLOWED_", "DJANGO_ALLOW_ASYNC_UNSAFE"))
    }
    return {**env, "DJANGO_SETTINGS_MODULE": "webapp.settings", "STUDIO_HOME": str(tmp_path / "home"), **extra}


def _production_env(tmp_path) -> dict:
    return _env(
        tmp_path, DEBUG="false", SECURE="true", SECRET_KEY=secrets.token_urlsafe(64), ALLOWED_HOSTS="studio.example.com"
    )


def _check_deploy(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _settings_under(env: dict) -> dict:
    code = (
        "import json, django; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n, None) for n in {SECURITY_SETTINGS!r}}}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    values = json.loads(done.stdout.strip().splitlines()[-1])
    if values["SECURE_PROXY_SSL_HEADER"]:
        values["SECURE_PROXY_SSL_HEADER"] = tuple(values["SECURE_PROXY_SSL_HEADER"])
    return values


def test_production_settings_pass_check_deploy_without_warnings(tmp_path):
    done = _check_deploy(_production_env(tmp_path))
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "WARNINGS" not in output and "?: (security" not in output and "?: (axes" not in output, output
    assert "no issues" in output, output


def test_default_settings_do_warn_so_the_check_above_can_fail(tmp_path):
    done = _check_deploy(_env(tmp_path))
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "WARNINGS" in output, output
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):  # HSTS, redirect, cookies
        assert check in output, output


@pytest.fixture
def production(tmp_path):
    """This module's Django settings overridden with what the settings module computes under SECURE=true."""
    values = _settings_under(_production_env(tmp_path))
    assert values["SESSION_COOKIE_SECURE"] and values["SECURE_PROXY_SSL_HEADER"], values
    with override_settings(**values):
        yield values


def _log_in(client: Client, username: str, **request) -> tuple:
    page = client.get("/login/", **request)
    response = client.post("/login/", {"username": username, "password": "pw-" + username}, **request)
    return page, response


def test_production_cookies_are_secure_httponly_and_lax(production, alice):
    page, response = _log_in(Client(), "alice", secure=True)
    assert response.status_code == 302, response.content[:500]
    session, csrf = response.cookies["sessionid"], page.cookies["csrftoken"]
    assert session["secure"] and csrf["secure"]
    assert session["httponly"]
    assert session["samesite"] == csrf["samesite"] == "Lax"
    assert "Secure" in session.output() and "HttpOnly" in session.output()
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert response["X-Content-Type-Options"] == "nosniff"


def test_production_behind_a_tls_proxy(production, alice):
    # The proxy says the client spoke https: no redirect, and the session cookie is Secure.
    _, response = _log_in(Client(), "alice", headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 302 and response["Location"] == "/jobs/"
    assert response.cookies["sessionid"]["secure"]
    # Plain http is sent to https; the container's health check over plain http still answers.
    plain = Client().get("/login/")
    assert plain.status_code == 301 and plain["Location"] == "https://testserver/login/"
    assert Client().get("/healthz").status_code == 200


def test_embedded_default_keeps_working_over_plain_http(alice, tmp_path):
    values = _settings_under(_env(tmp_path))
    assert not values["SESSION_COOKIE_SECURE"] and not values["SECURE_SSL_REDIRECT"], values
    with override_settings(**values):
        _, response = _log_in(Client(), "alice")
        assert response.status_code == 302 and response["Location"] == "/jobs/"
        session = response.cookies["sessionid"]
        assert not session["secure"] and session["httponly"] and session["samesite"] == "Lax"
