"""Saving a trained run as its adapter folder (artifacts.py writes the labels and the model card): written under
a temporary name and moved into place whole."""

from __future__ import annotations

import shutil
from pathlib import Path

from . import base_pruning, task_routing
from .adapters import save_native, write_method_file
from .artifacts import replace_folder, write_labels, write_model_card
from .models import BUNDLED_MODEL_ID, BUNDLED_UPSTREAM_ID, LOCAL_PREFIX, is_hub_id
from .spec import TrainSpec
from .start_from import carry_base
from .tasks import get_task

ADAPTER_DIR = "adapter"


def upstream_base(base_model: str) -> str:
    """The base model name recorded in adapter_config.json: one that means something off this machine."""
    if base_model == BUNDLED_MODEL_ID:
        return BUNDLED_UPSTREAM_ID
    if base_model.startswith(LOCAL_PREFIX):
        return base_model[len(LOCAL_PREFIX) :]
    return base_model if is_hub_id(base_model) else Path(base_model).name


def save_adapter(
    model,
    tokenizer,
    spec: TrainSpec,
    labels: list[str],
    report: dict,
    base_plan: dict | None = None,
    tasks=None,
) -> Path:
    """base_plan: Light-PEFT's cut of the base model's heads and channels (base_pruning.py), when the run made one;
    continuing an adapter that carries one carries it on. tasks: a task per group (task_routing.py), whose
    tasks.json maps each group value to its task id."""
    spec.output_dir.mkdir(parents=True, exist_ok=True)
    partial = spec.output_dir / f".{ADAPTER_DIR}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    base_model = spec.metadata.get("base_model") or str(spec.model_path)
    options = get_task(spec.task).options(spec)
    for config in getattr(model, "peft_config", {}).values():
        config.base_model_name_or_path = upstream_base(base_model)
    if spec.method.save is not None:
        spec.method.save(model, partial)
    elif spec.method.saved_as == "peft":
        # save_embedding_layers=False: the vocabulary never changes here, and "auto" would look the base model
        # up on the hub (a network call, and a hang on machines without internet).
        model.save_pretrained(str(partial), safe_serialization=True, save_embedding_layers=False)
        start = getattr(model, "peftcore_start_factors", None)
        if start:  # LoRA-GA or CorDA took its start out of the base weights: save relative to the untouched ones
            from .lora_ga import convert_saved

            convert_saved(partial, start)
    else:
        save_native(
            model,
            partial,
            method=spec.method.name,
            params=spec.method_params,
            task=spec.task,
            base_model=upstream_base(base_model),
        )
    tokenizer.save_pretrained(str(partial))
    write_labels(partial, labels)
    write_method_file(partial, method=spec.method.name, params=spec.method_params, task=spec.task, **options)
    if tasks is not None:
        task_routing.write(partial, tasks)
    stacked = carry_base(spec.start_from, partial)
    if base_plan is None and spec.start_from is not None and spec.start_from.mode == "continue":
        base_plan = base_pruning.read_plan(spec.start_from.folder)
    load_lines = spec.method.load_lines
    if base_plan is not None:
        base_pruning.write_plan(partial, base_plan, model)
        load_lines = base_pruning.LOAD_LINES
    example = get_task(spec.task).card_example(tokenizer, options)
    write_model_card(  # written last: it replaces the generic README.md peft writes
        partial,
        example_prompt=example,
        base_model=base_model,
        method=spec.method.name,
        method_params=spec.method_params,
        params=spec.params,
        labels=labels,
        metrics=report["metrics"],
        dataset_sha256=spec.metadata.get("dataset_sha256"),
        eval_dataset_sha256=spec.metadata.get("eval_dataset_sha256"),
        task=spec.task,
        dataset_name=spec.metadata.get("dataset_name"),
        train_rows=report["train_rows"],
        eval_rows=report["eval_rows"],
        trainable_params=report["trainable_params"],
        total_params=report["total_params"],
        saved_as=spec.method.saved_as,
        load_lines=load_lines,
        stacked=stacked,
        options=options,
        routing=None
        if spec.method.expand_tasks is None
        else ({"column": tasks.column, "group": tasks.values[0]} if tasks is not None else {}),
    )
    return replace_folder(partial, spec.output_dir / ADAPTER_DIR)
