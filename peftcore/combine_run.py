"""A combination job (issue 21): finished adapters combined into one (combine.py), which is then evaluated like a
trained adapter, and each parent on the same rows, so the report compares them side by side.

The spec's `combine` section: {"adapters": [folder, ...], "parents": [job id, ...], "weights": [...],
"combination": "sum", "density": null, "svd_rank": null}. The combined adapter becomes the run's starting adapter
(mode continue) and the run takes no optimizer step: one epoch of zero steps is one evaluation.

A learned combination (combination "learned", method xlora) trains instead: X-LoRA's router over the adapters,
frozen, on the job's rows, for the job's epochs; its parents are scored by running each expert alone.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .combine import LEARNED, MODES, CombineError, combine
from .errors import BAD_PARAMS, TrainingError
from .events import phase
from .start_from import StartFrom


def check_section(section) -> dict | None:
    """The spec's combine section, checked (None: not a combination job)."""
    if section is None:
        return None
    if not isinstance(section, dict):
        raise TrainingError(BAD_PARAMS, "combine must be an object")
    adapters, weights = section.get("adapters"), section.get("weights")
    if not isinstance(adapters, list) or not isinstance(weights, list) or len(adapters) != len(weights):
        raise TrainingError(BAD_PARAMS, "combine needs as many weights as adapters")
    if any(isinstance(w, bool) or not isinstance(w, (int, float)) for w in weights):
        raise TrainingError(BAD_PARAMS, "combine weights must be numbers")
    if section.get("combination", "sum") not in MODES:
        raise TrainingError(BAD_PARAMS, f"unknown combination; choose one of: {', '.join(MODES)}")
    parents = section.get("parents") or [None] * len(adapters)
    return {**section, "parents": parents, "weights": [float(w) for w in weights]}


def learned(job) -> bool:
    return bool(job.combine) and job.combine.get("combination") == LEARNED


def combine_parents(job, sink) -> None:
    """Write the combined adapter next to the output folder and make it the run's start (nothing is trained); a
    learned combination builds X-LoRA over the parents instead, and trains."""
    section = job.combine
    if learned(job):
        from .methods.xlora import build_over

        if job.method.name != "xlora":
            raise TrainingError(BAD_PARAMS, "a learned combination trains an X-LoRA router: its method must be xlora")
        phase(sink, f"mixing {len(section['adapters'])} adapters with a learned router (X-LoRA)")
        job.method = dataclasses.replace(job.method, build=build_over(section["adapters"]))
        job.params.update(baseline_eval=False)  # the untrained router is an even mix, not the untrained model
        return
    phase(sink, f"combining {len(section['adapters'])} adapters ({section.get('combination', 'sum')})")
    folder = Path(job.output_dir).parent / "combined"
    try:
        combine(
            job.model_path,
            [Path(a) for a in section["adapters"]],
            section["weights"],
            folder,
            combination=section.get("combination", "sum"),
            density=section.get("density"),
            svd_rank=section.get("svd_rank"),
        )
    except CombineError as exc:
        raise TrainingError(BAD_PARAMS, f"cannot combine: {exc}") from exc
    job.start_from = StartFrom(folder=folder, mode="continue")
    job.params.update(epochs=1, baseline_eval=False, patience=0)


def evaluate_parents(run) -> list[dict]:
    """Each parent adapter on the combined adapter's evaluation rows: loaded beside it, evaluated, removed again
    (so the saved adapter folder holds the combined one only)."""
    from . import devices

    section, model, results = run.spec.combine, run.model, []
    shares = _router_shares(run) if learned(run.spec) else []
    for i, (folder, job_id) in enumerate(zip(section["adapters"], section["parents"])):
        phase(run.sink, f"evaluating parent {i + 1} of {len(section['adapters'])} on {len(run.eval_features):,} rows")
        if learned(run.spec):  # the parent is an expert of the model: run it alone
            from .xlora import OneExpert

            model.eval()
            with OneExpert(model, str(i)), devices.autocast(run.device, run.precision):
                evaluation = run.runner.evaluate(model, run.eval_features, run.rows.eval, final=True)
        else:
            name = f"parent_{i}"
            model.load_adapter(str(folder), adapter_name=name)
            model.set_adapter(name)
            model.eval()
            with devices.autocast(run.device, run.precision):
                evaluation = run.runner.evaluate(model, run.eval_features, run.rows.eval, final=True)
            model.set_adapter("default")
            model.delete_adapter(name)
        result = {"job": job_id, "weight": section["weights"][i], "metrics": evaluation["metrics"]}
        if learned(run.spec):
            result["router_share"] = shares[i] if shares else None
        results.append(result)
    return results


def _router_shares(run) -> list[float]:
    """How much of the mix the trained router gave each parent on the evaluation rows (one more pass over them)."""
    from . import devices
    from .xlora import router_shares

    phase(run.sink, "measuring how the router weighs each adapter")
    run.model.eval()
    with devices.autocast(run.device, run.precision):
        return router_shares(
            run.model, lambda: run.runner.evaluate(run.model, run.eval_features, run.rows.eval, final=False)
        )


def report_section(run, parents: list[dict]) -> dict:
    section = run.spec.combine
    return {
        "combination": section.get("combination", "sum"),
        "density": section.get("density"),
        "parents": parents,
    }
