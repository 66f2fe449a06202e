"""The evaluation report of a finished run (the done event carries it; the studio stores it as the job's
EvalReport): metrics and the task's report sections, the baseline, efficiency figures and the lineage."""

from __future__ import annotations

from . import verdict
from .spec import TrainSpec
from .tasks import get_task


def peak_memory_bytes(device) -> int:
    """The accelerator's peak allocation, or on a CPU this process's peak resident memory."""
    if device.type == "cuda":
        import torch

        return int(torch.cuda.max_memory_allocated(device))
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux reports KiB


def optimizer_state_bytes(optimizer) -> int:
    """The bytes every tensor of the optimiser's state holds."""
    import torch

    return sum(
        value.numel() * value.element_size()
        for state in optimizer.state.values()
        for value in state.values()
        if isinstance(value, torch.Tensor)
    )


def lineage(spec: TrainSpec, params: dict) -> dict:
    """What a run needs to be repeated: seed, resolved configuration, data hashes and library versions."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    def installed(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    return {
        "seed": params["seed"],
        "method": spec.method.name,
        "method_params": spec.method_params,
        "params": params,
        "base_model": spec.metadata.get("base_model") or str(spec.model_path),
        "dataset_sha256": spec.metadata.get("dataset_sha256"),
        "eval_dataset_sha256": spec.metadata.get("eval_dataset_sha256"),
        "start_from": {"mode": spec.start_from.mode} if spec.start_from else None,
        "columns": {
            key: value
            for key, value in (
                ("text_column", spec.text_column),
                ("label_column", spec.label_column),
                ("input_column", spec.input_column),
                ("messages_column", spec.messages_column),
            )
            if value
        },
        **get_task(spec.task).options(spec),
        "versions": {
            "python": platform.python_version(),
            **{name: installed(name) for name in ("torch", "transformers", "peft", "safetensors")},
        },
    }


def build_report(run, metrics: dict) -> dict:
    """The report of a loop.Run whose training is done (`metrics`: the last evaluation's and train_loss)."""
    spec, p = run.spec, run.progress
    working_seconds = p.train_seconds - p.eval_seconds - p.checkpoint_seconds
    report = {
        "task": spec.task,
        "labels": run.labels,
        "metrics": metrics,
        **run.evaluation["report"],
        "train_rows": len(run.rows.train),
        "eval_rows": len(run.rows.eval),
        "trainable_params": run.trainable_params,
        "total_params": run.total_params,
        "train_seconds": round(p.train_seconds, 3),
        "baseline_metrics": p.baseline.get("metrics"),
        # None when it was turned off; checkpoints from before it was sampled measured every row
        "baseline_rows": p.baseline.get("rows", len(run.rows.eval)) if p.baseline else None,
        "efficiency": {
            "trainable_share": run.trainable_params / run.total_params if run.total_params else None,
            "tokens_per_second": round(p.train_tokens / max(working_seconds, 1e-9), 1),
            "train_tokens": p.train_tokens,
            "peak_memory_bytes": peak_memory_bytes(run.device),
            # the optimiser's moments (and GaLore's projections): exact on any device, unlike a process's peak
            "optimizer_state_bytes": optimizer_state_bytes(run.optimizer),
        },
        "lineage": lineage(spec, spec.params),
        "device": run.device.type,
        "method": spec.method.name,
        "method_params": spec.method_params,
        "params": spec.params,
        "micro_batch_size": spec.micro_batch_size,
        "resumed_from_step": run.resumed_from_step,
        # why each setting left empty got its value (defaults.py), and which evaluation the adapter is
        "choices": spec.choices,
        "best": {"epoch": p.best["epoch"], "step": p.best["step"]} if p.best else None,
        "stopped_early": bool(p.best) and p.step < run.total_steps,
        "total_steps": run.total_steps,
        "steps": p.step,
    }
    report["intervals"] = verdict.intervals(metrics, len(run.rows.eval), report.get("generated_rows"))
    report["warnings"] = verdict.warnings(report)
    before = {sample["row"]: sample["generation"] for sample in p.baseline.get("samples", [])}
    for sample in report.get("samples", []):
        sample["baseline_generation"] = before.get(sample["row"])  # what the untrained model wrote
    return report
