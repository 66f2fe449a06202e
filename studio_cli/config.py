"""Where the studio is and which token to use: flags, environment, or the file `login` writes."""

import json
import os
import re
from pathlib import Path

from studio_cli import API_PREFIX, PROG
from studio_cli.errors import CliError


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME", "")
    if not os.path.isabs(base):  # the XDG spec says to ignore a relative path
        base = str(Path.home() / ".config")
    return Path(base) / "studio" / "config.json"


def config_read() -> dict:
    path = config_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {path} ({exc}); run `{PROG} login` again or delete the file") from None
    return data if isinstance(data, dict) else {}


def config_write(*, url: str, token: str) -> Path:
    """Write the URL and token readable by the user alone (0600), replacing the old file in one step."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT keeps the mode of a file that was already there
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({"url": url, "token": token}, out)
    os.replace(temporary, path)
    return path


def normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not re.match(r"^https?://[^/]", url):
        raise CliError(f"'{url}' is not a studio address; give one such as http://127.0.0.1:8000")
    return url.removesuffix(API_PREFIX)


def resolve(args) -> tuple[str, str]:
    """URL and token: the flags, else STUDIO_URL / STUDIO_TOKEN, else the file `login` wrote."""
    saved = config_read() if not (args.url and args.token) else {}
    url = args.url or os.environ.get("STUDIO_URL") or saved.get("url")
    token = args.token or os.environ.get("STUDIO_TOKEN") or saved.get("token")
    if not url:
        raise CliError(f"no studio address: pass --url, set STUDIO_URL or run `{PROG} login --url URL --token TOKEN`")
    if not token:
        raise CliError(
            f"no API token: pass --token, set STUDIO_TOKEN or run `{PROG} login --url URL --token TOKEN` "
            "(`python manage.py studio_token USERNAME` on the server prints a token)"
        )
    return normalise_url(url), token
