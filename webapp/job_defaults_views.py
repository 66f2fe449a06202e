"""The job form's "chosen for you" panel: what each empty setting will be for the chosen dataset, model and
method, and why; with the warnings for a run likely to learn nothing. Polled by htmx as the form changes."""

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render

from jobs import selectors, services
from peftcore.methods import UnknownMethodError, get_method
from peftcore.schema import format_errors, validate_params
from peftcore.tasks import UnknownTaskError, get_task
from peftcore.training_params import TRAINING_PARAMS

from .forms import METHOD_PREFIX, TRAINING_PREFIX

TEMPLATE = "jobs/_defaults.html"


@login_required
def job_defaults(request):
    try:
        dataset = selectors.dataset_get(actor=request.actor, dataset_id=int(request.GET.get("dataset", "")))
        model = selectors.base_model_get(actor=request.actor, model_id=int(request.GET.get("base_model", "")))
        method = get_method(request.GET.get("method"))
        task = get_task(request.GET.get("task") or "text-classification")
    except (ValueError, UnknownMethodError, UnknownTaskError, Http404):
        return render(request, TEMPLATE, {"error": "choose a dataset, a base model and a method"}, status=400)
    eval_dataset = None
    if request.GET.get("eval_dataset"):
        try:
            eval_dataset = selectors.dataset_get(actor=request.actor, dataset_id=int(request.GET["eval_dataset"]))
        except (ValueError, Http404):
            eval_dataset = None
    raw_params = {p.name: request.GET.get(TRAINING_PREFIX + p.name) for p in TRAINING_PARAMS}
    # An unticked checkbox is absent from the form: that means false, not "the default".
    raw_method = {
        p.name: (METHOD_PREFIX + p.name in request.GET) if p.type == "bool" else request.GET.get(METHOD_PREFIX + p.name)
        for p in method.params
    }
    params, errors = validate_params(TRAINING_PARAMS, raw_params)
    method_params, method_errors = validate_params(method.params, raw_method)
    if errors or method_errors:
        problems = format_errors({**errors, **method_errors})
        return render(request, TEMPLATE, {"error": f"Fix the settings to see what the studio chooses: {problems}"})
    columns = {
        key: request.GET.get(key, "")
        for key in ("text_column", "label_column", "input_column", "messages_column", "template")
    }
    preview = services.job_defaults_preview(
        task=task,
        method=method,
        dataset=dataset,
        eval_dataset=eval_dataset,
        base_model=model,
        columns=columns,
        params=params,
        method_params=method_params,
    )
    return render(request, TEMPLATE, preview)
