"""The job list: one page of the team's jobs at a time (keyset, newest first), filtered by status, method,
dataset, member and name, with each queued job's place in the queue."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from jobs import selectors
from jobs.models import Job
from teams.selectors import team_members

from .forms import JobFilterForm


@login_required
def job_list(request):
    team = request.actor.team
    datasets = selectors.dataset_list(actor=request.actor).only("pk", "name").order_by("name") if team else []
    members = [m.user.username for m in team_members(team=team)] if team else []
    form = JobFilterForm(request.GET, datasets=datasets, members=members)
    filters = form.cleaned_data if form.is_valid() else {}
    jobs, next_before = selectors.job_page(actor=request.actor, **{k: v for k, v in filters.items() if v})
    positions = selectors.queue_positions(job.pk for job in jobs if job.status == Job.Status.QUEUED)
    for job in jobs:
        job.queue_position = positions.get(job.pk)
    kept = request.GET.copy()  # the filters, for the next page's link
    kept.pop("before", None)
    return render(
        request,
        "jobs/list.html",
        {
            "jobs": jobs,
            "form": form,
            "filtered": any(v for k, v in filters.items() if k != "before"),
            "paged": bool(filters.get("before")),
            "next_query": f"{kept.urlencode()}&before={next_before}" if next_before else None,
            "first_query": kept.urlencode(),
        },
    )
