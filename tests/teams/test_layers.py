"""Dependencies run one way, webapp -> jobs -> teams -> Django: a lower app never imports a higher one, not even
inside a function."""

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HIGHER = {"teams": ("jobs", "webapp"), "jobs": ("webapp",)}


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("app", sorted(HIGHER))
def test_an_app_never_imports_the_apps_above_it(app):
    offenders = [f"{path.relative_to(REPO_ROOT)}: {name}" for path in (REPO_ROOT / app).rglob("*.py")
                 for name in _imports(path) if name.split(".")[0] in HIGHER[app]]
    assert offenders == []
