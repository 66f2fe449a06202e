"""Predictions from a finished adapter folder: the playground's engine (run by a worker, never the web process).

Any adapter the studio writes loads the same way (peft, peftcore's own methods, full fine-tuning, stacked), so
the playground tries exactly what a user downloads. The folder's task (Task.load_predictor, Task.predict) does
the work.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .start_from import adapter_method
from .tasks import TEXT_CLASSIFICATION, Predictor, get_task
from .tasks._base import PLAYGROUND_MAX_LENGTH, PLAYGROUND_NEW_TOKENS, PLAYGROUND_TEXTS

MAX_TEXTS, MAX_LENGTH, MAX_NEW_TOKENS = PLAYGROUND_TEXTS, PLAYGROUND_MAX_LENGTH, PLAYGROUND_NEW_TOKENS


def adapter_task(adapter_dir: Path) -> str:
    """The task an adapter folder was trained for (classification for folders from before it was recorded)."""
    return (adapter_method(Path(adapter_dir)) or {}).get("task") or TEXT_CLASSIFICATION


def load_predictor(model_path: Path, adapter_dir: Path) -> Predictor:
    """The adapter applied to its base model, ready for predict()."""
    return get_task(adapter_task(adapter_dir)).load_predictor(Path(model_path), Path(adapter_dir))


def predict(
    predictor: Predictor, texts: Sequence[str], *, max_length: int = 128, max_new_tokens: int = 64, **generation
) -> list[dict]:
    """Per text: {"label", "probabilities"} (a task with labels) or {"generation"[, "base_generation"]} (a
    generative task). generation: a generative task's temperature, top_p, compare_base and on_partial."""
    extra = generation if predictor.task.generative else {}
    return predictor.task.predict(predictor, texts, max_length=max_length, max_new_tokens=max_new_tokens, **extra)
