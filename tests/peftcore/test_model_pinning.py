"""Hub models are pinned to a commit, and nothing that loads a model may run the model's own code or read
pickled weights."""

import ast
import fnmatch
from pathlib import Path

import huggingface_hub.constants
import pytest

from peftcore import models
from peftcore.models import ModelRefError, is_commit_id, is_revision, pin_hub_revision

REPO = Path(__file__).resolve().parents[2]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(autouse=True)
def hub_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def test_a_commit_id_is_kept_without_the_network():
    assert pin_hub_revision("owner/name", COMMIT.upper()) == COMMIT
    assert is_commit_id(COMMIT) and not is_commit_id(COMMIT[:12]) and not is_commit_id("main")


@pytest.mark.parametrize("revision", ["", "main", "refs/pr/1"])
def test_a_branch_that_cannot_be_resolved_asks_for_the_commit(revision):
    with pytest.raises(ModelRefError, match="could not ask the Hugging Face hub.*full 40-character commit id"):
        pin_hub_revision("owner/name", revision)


@pytest.mark.parametrize("revision", ["bad rev", "-main", "a..b", "x" * 200])
def test_malformed_revisions_are_refused_before_any_lookup(revision):
    assert not is_revision(revision)
    with pytest.raises(ModelRefError, match="is not a revision"):
        pin_hub_revision("owner/name", revision)


def test_hub_downloads_never_fetch_pickled_weights():
    for name in ("pytorch_model.bin", "model.pt", "weights.pth", "model.ckpt", "x.pkl"):
        assert not any(fnmatch.fnmatch(name, pattern) for pattern in models._HUB_PATTERNS), name


def _calls(*folders: str):
    for folder in folders:
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call):
                    yield f"{path.relative_to(REPO)}:{node.lineno}", node


def _is(value: ast.expr, constant: bool) -> bool:
    return isinstance(value, ast.Constant) and value.value is constant


def test_trust_remote_code_is_never_true():
    offenders = [
        where
        for where, call in _calls("peftcore", "jobs", "webapp")
        for kw in call.keywords
        if kw.arg == "trust_remote_code" and not _is(kw.value, False)
    ]
    assert offenders == []


def test_every_model_load_reads_safetensors_only():
    loads = [
        (where, call)
        for where, call in _calls("peftcore", "jobs")
        if isinstance(call.func, ast.Attribute)
        and call.func.attr == "from_pretrained"
        and isinstance(call.func.value, ast.Name)
        and (call.func.value.id.startswith("AutoModel") or call.func.value.id == "auto")
    ]
    assert len(loads) >= 2  # classification and generation: the test would pass vacuously otherwise
    offenders = [
        where
        for where, call in loads
        if not any(kw.arg == "use_safetensors" and _is(kw.value, True) for kw in call.keywords)
    ]
    assert offenders == []
