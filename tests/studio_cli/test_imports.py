"""The CLI runs on a user's machine: it loads its HTTP client and the standard library, never the studio's server
side, and `--help` loads argparse alone (how fast that is, is measured, not asserted here)."""

import importlib
import json
import os
import subprocess
import sys

import pytest

from studio_cli.cli import build_parser
from tests.conftest import REPO

SERVER_SIDE = {"django", "celery", "kombu", "webapp", "jobs", "teams", "peftcore", "torch", "transformers", "peft"}


def _python(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


def test_help_imports_nothing_of_the_server_nor_the_http_client():
    result = _python("-X", "importtime", "-m", "studio_cli", "--help")
    assert result.returncode == 0 and "usage: python -m studio_cli" in result.stdout, result.stdout + result.stderr
    # importtime writes one line per module to stderr: "import time: self | cumulative | name".
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in result.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }
    assert "studio_cli.cli" in imported
    top_level = {name.lstrip().split(".")[0] for name in imported}
    assert not top_level & SERVER_SIDE, sorted(top_level & SERVER_SIDE)
    # httpx and tqdm are what a command needs; --help does not wait for them.
    assert not top_level & {"httpx", "tqdm"}, sorted(top_level & {"httpx", "tqdm"})


def test_every_module_of_the_cli_leaves_the_server_side_alone():
    code = (
        "import importlib, json, pkgutil, sys, studio_cli; "
        "[importlib.import_module(m.name) for m in pkgutil.walk_packages(studio_cli.__path__, 'studio_cli.') "
        "if m.name != 'studio_cli.__main__']; "
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))"
    )
    result = _python("-c", code)
    assert result.returncode == 0, result.stderr
    loaded = set(json.loads(result.stdout))
    assert {"httpx", "tqdm", "studio_cli"} <= loaded
    assert not loaded & SERVER_SIDE, sorted(loaded & SERVER_SIDE)


def _commands(parser):
    """(name, "module:function") of every command."""
    subparsers = next(action for action in parser._actions if action.dest == "command")
    return [(name, sub.get_default("run")) for name, sub in subparsers.choices.items()]


@pytest.mark.parametrize(("name", "run"), _commands(build_parser()))
def test_each_command_names_a_function_that_exists(name, run):
    module, function = run.split(":")
    assert callable(getattr(importlib.import_module(f"studio_cli.commands.{module}"), function)), name
