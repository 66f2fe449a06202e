"""Management commands: studio_token, and studio_setup on the embedded default (SQLite + file-system broker)."""

import io
import os
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from teams.models import ApiToken, hash_token
from tests.conftest import REPO


def test_studio_token_prints_a_working_token_and_stores_only_its_hash(alice):
    buf = io.StringIO()
    call_command("studio_token", "alice", stdout=buf)
    raw = buf.getvalue().strip()
    assert raw.startswith(ApiToken.PREFIX)
    assert Client(headers={"Authorization": f"Bearer {raw}"}).get("/api/v1/jobs").status_code == 200
    token = ApiToken.objects.get(user=alice)
    assert token.key_hash != raw and token.key_hash == hash_token(raw)


def test_studio_token_for_an_unknown_user_fails(db):
    with pytest.raises(CommandError, match="nobody"):
        call_command("studio_token", "nobody", stdout=io.StringIO())
    assert ApiToken.objects.count() == 0


def test_studio_token_scopes_the_token_to_the_named_team_and_refuses_a_team_not_joined(alice, bob):
    from teams.models import Membership, Team

    Membership.objects.create(team=Team.objects.get(name="Team B"), user=alice, role=Membership.Role.VIEWER)
    buf = io.StringIO()
    call_command("studio_token", "alice", "--team", "Team B", "--name", "ci", stdout=buf)
    api = Client(headers={"Authorization": f"Bearer {buf.getvalue().strip()}"})
    assert (api.get("/api/v1/team").json()["name"], ApiToken.objects.get(user=alice).name) == ("Team B", "ci")
    with pytest.raises(CommandError, match="not a member of Team A"):
        call_command("studio_token", "bob", "--team", "Team A", stdout=io.StringIO())
    with pytest.raises(CommandError, match="no team named 'Team C'"):
        call_command("studio_token", "alice", "--team", "Team C", stdout=io.StringIO())
    assert ApiToken.objects.count() == 1


def manage(*args, env) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_setup_on_the_embedded_default_is_idempotent(tmp_path):
    removed = ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE")
    env = {k: v for k, v in os.environ.items() if k not in removed} | {"STUDIO_HOME": str(tmp_path)}

    def password_line(result):
        lines = [line for line in result.stdout.splitlines() if "password" in line]
        assert len(lines) == 1, result.stdout
        return lines[0]

    first, second = manage("studio_setup", env=env), manage("studio_setup", env=env)
    assert "Log in as user 'demo' with password: " in password_line(first)
    assert password_line(first) == password_line(second)
    assert (tmp_path / "studio.sqlite3").is_file()
    assert manage("studio_token", "demo", env=env).stdout.strip().startswith("fts_")
