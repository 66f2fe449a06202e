"""Sweeps in the browser (issue 21): the form that starts one from a job, the list, and the sweep page (a table
and two plots of score against trainable parameters and against training time; best in bold)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from jobs import selectors, services
from jobs.errors import ValidationFailed
from jobs.models import Job
from teams.models import Membership
from teams.permissions import require

from .sweep_forms import SweepForm

# Where a service refusal is shown on the form (the rest go to the summary at the top).
FIELD_OF = {
    "methods": "methods",
    "budget": "budget",
    "name": "name",
    **{f"grid.{n}": f"vary_{n}" for n in services.AXES},
}


@login_required
def sweep_new(request, job_id: int):
    team = require(request.actor, request.actor.team, Membership.Role.MEMBER).team
    base = selectors.job_get(actor=request.actor, job_id=job_id)
    form = SweepForm(request.POST or None, task=base.task, initial={"methods": [base.method]})
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                sweep = services.sweep_create(
                    team=team,
                    user=request.user,
                    base_job=base,
                    methods=form.cleaned_data["methods"],
                    grid=form.grid(),
                    budget=form.cleaned_data["budget"],
                    name=form.cleaned_data["name"],
                )
                return redirect("sweep-detail", sweep_id=sweep.pk)
            except ValidationFailed as exc:
                for field, message in exc.errors.items():
                    form.add_error(FIELD_OF.get(field), message)
        status = 400
    return render(request, "sweeps/new.html", {"form": form, "base": base}, status=status)


@login_required
def sweep_list(request):
    return render(request, "sweeps/list.html", {"sweeps": selectors.sweep_list(actor=request.actor)[:200]})


@login_required
def sweep_detail(request, sweep_id: int):
    sweep = selectors.sweep_get(actor=request.actor, sweep_id=sweep_id)
    rows = selectors.sweep_rows(sweep=sweep)
    points = [
        {
            "trainable": row["trainable"],
            "seconds": row["seconds"],
            "score": row["score"],
            "label": f"#{row['job'].pk} {row['job'].method} {row['values']}",
            "group": row["job"].method,
            "best": row.get("best", False),
        }
        for row in rows
    ]
    live = any(row["job"].status in (Job.Status.QUEUED, Job.Status.RUNNING) for row in rows)
    best = next((row for row in rows if row.get("best")), None)
    context = {"sweep": sweep, "rows": rows, "points": points, "live": live, "best": best}
    context["axes"] = [name for name in ("r", "learning_rate", "epochs") if name in sweep.axes]
    context["metric"] = rows[0]["metric"] if rows else "accuracy"
    return render(request, "sweeps/detail.html", context)


@login_required
@require_POST
def sweep_cancel(request, sweep_id: int):
    sweep = selectors.sweep_get(actor=request.actor, sweep_id=sweep_id)
    require(request.actor, sweep.team_id, Membership.Role.MEMBER)
    stopped = services.sweep_cancel(sweep=sweep, user=request.user)
    messages.success(request, f"Cancelled {stopped} job(s) of the sweep; finished ones keep their results.")
    return redirect("sweep-detail", sweep_id=sweep.pk)
