import getpass
import os
import sys

from studio_cli.client import Studio
from studio_cli.config import config_write, normalise_url
from studio_cli.errors import CliError


def login(args) -> int:
    url = args.url or os.environ.get("STUDIO_URL")
    if not url:
        raise CliError("give the studio's address: login --url http://HOST:PORT --token TOKEN")
    url = normalise_url(url)
    token = args.token or os.environ.get("STUDIO_TOKEN")
    if not token and sys.stdin.isatty():
        token = getpass.getpass("API token: ").strip()
    if not token:
        raise CliError(
            "give an API token with --token (`python manage.py studio_token USERNAME` on the server prints one)"
        )
    team = Studio(url, token).get("/team")  # checked before anything is written
    path = config_write(url=url, token=token)
    who = f"{team['username']}, " if team.get("username") else ""
    print(f"logged in to {url} as {who}{team['role']} of team '{team['name']}'; saved to {path}")
    return 0
