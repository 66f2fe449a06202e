"""The combine page (issue 21): pick finished LoRA jobs and weights; the combination runs as a job."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from jobs import selectors, services
from jobs.errors import ValidationFailed
from teams.models import Membership
from teams.permissions import require

from .combine_forms import CombineForm, weight_field_name

# Where a service refusal is shown on the form (the rest go to the top, in the error summary).
FIELD_OF = {"combination": "combination", "density": "density", "eval_dataset": "eval_dataset", "name": "name"}


def _ids(request) -> list[int]:
    ids = []
    for value in request.GET.getlist("ids"):
        ids += [int(part) for part in value.split(",") if part.strip().isdigit()]
    return ids[:8]


def _weights(request, ids: list[int]) -> dict[int, float]:
    """?weights=1,-0.5 beside ?ids= (a combination's "again"); 1 for each id without one."""
    given = []
    for part in request.GET.get("weights", "").split(","):
        try:
            given.append(float(part))
        except ValueError:
            given.append(1.0)
    return {pk: given[i] if i < len(given) else 1.0 for i, pk in enumerate(ids)}


@login_required
def job_combine(request):
    team = require(request.actor, request.actor.team, Membership.Role.MEMBER).team
    picked = _ids(request)
    posted = request.method == "POST"
    if posted:
        picked = [
            int(name.removeprefix("weight_"))
            for name, value in request.POST.items()
            if name.startswith("weight_") and value
        ]
    candidates = selectors.job_combine_candidates(actor=request.actor, picked=picked)
    form = CombineForm(
        request.POST if posted else None,
        candidates=candidates,
        datasets=selectors.dataset_list(actor=request.actor),
        picked=_weights(request, picked),
        initial={"combination": request.GET.get("combination", "sum")},
    )
    status = 200
    if posted:
        if form.is_valid():
            parents, weights = form.picked()
            try:
                job = services.job_combine_create(
                    team=team,
                    user=request.user,
                    parents=parents,
                    weights=weights,
                    combination=form.cleaned_data["combination"],
                    density=form.cleaned_data["density"],
                    eval_dataset=form.cleaned_data["eval_dataset"],
                    name=form.cleaned_data["name"],
                )
                return redirect("job-detail", job_id=job.pk)
            except ValidationFailed as exc:
                for field, message in exc.errors.items():
                    form.add_error(FIELD_OF.get(field), message)
        status = 400
    return render(
        request, "jobs/combine.html", {"form": form, "weight_field": weight_field_name, "picked": picked}, status=status
    )
