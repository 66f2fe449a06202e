"""Browser pages: thin views over selectors and services."""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from jobs import comparison, runtime, selectors, services
from jobs.dashboard import workers_online
from jobs.errors import Conflict, Refused, ValidationFailed
from jobs.job_needs import waiting_reason
from jobs.models import Artifact, Dataset, Job
from peftcore.methods import UnknownMethodError, all_methods, get_method
from peftcore.schema import format_errors, validate_params
from peftcore.training_params import TRAINING_PARAMS
from teams.audit import audit_record
from teams.models import Membership
from teams.permissions import require

from .export_views import merged_context
from .forms import METHOD_PREFIX, TRAINING_PREFIX, JobForm
from .uploads import artifact_response

# htmx stops polling when a response has this status (used once a job is final).
HTMX_STOP_POLLING = 286


@login_required
def home(request):
    return redirect("job-list")


@login_required
def job_compare(request):
    try:
        ids = comparison.parse_ids(request.GET.getlist("ids"))
    except ValueError as exc:
        message = str(exc) if isinstance(exc, comparison.TooManyJobs) else "job ids are numbers, such as ?ids=3,5"
        return render(request, "jobs/compare.html", {"error": message}, status=400)
    return render(
        request,
        "jobs/compare.html",
        {"comparison": comparison.job_compare(actor=request.actor, ids=ids), "asked": len(ids)},
    )


@login_required
def job_new(request):
    datasets = selectors.dataset_list(actor=request.actor).filter(state=Dataset.State.READY)
    models = selectors.base_model_list(actor=request.actor)
    submitted = request.method == "POST"
    # A GET (first visit, or htmx re-rendering after the dataset or method changed) pre-fills from the query.
    adapters = selectors.job_adapter_choices(actor=request.actor)
    form = JobForm(
        request.POST if submitted else None,
        datasets=datasets,
        models=models,
        adapters=adapters,
        initial=request.GET.dict(),
    )
    if submitted and form.is_valid():
        data = form.cleaned_data
        team = require(request.actor, request.actor.team, Membership.Role.MEMBER).team
        try:
            job = services.job_create(
                team=team,
                user=request.user,
                dataset=data["dataset"],
                eval_dataset=data["eval_dataset"],
                base_model=data["base_model"],
                method=data["method"],
                task=data["task"],
                text_column=data["text_column"],
                label_column=data["label_column"],
                name=data["name"],
                input_column=data.get("input_column") or "",
                messages_column=data.get("messages_column") or "",
                template=data.get("template") or "",
                params=form.grouped_values(TRAINING_PREFIX),
                method_params=form.grouped_values(METHOD_PREFIX),
                start_from=data["start_from"],
                start_mode=data["start_mode"],
                priority=data["priority"],
                time_limit_seconds=data["time_limit"] * 60 if data["time_limit"] else None,
                group_column=data.get("group_column") or "",
                group_shared=bool(data.get("group_shared")),
            )
        except ValidationFailed as exc:
            form.add_service_errors(exc.errors)
        else:
            return redirect("job-detail", job_id=job.pk)
    return render(
        request,
        "jobs/new.html",
        {
            "form": form,
            "methods": all_methods(),
            "has_datasets": datasets.exists(),
            "presets": list(selectors.job_presets(actor=request.actor)[:50]),
        },
        status=400 if submitted else 200,
    )


def _fragment_input(request):
    """A count fragment's fields and the URL that polls it: POST, since asking creates the row a worker fills;
    the poll posts again with the fields in its query string (an empty body: nothing to resend)."""
    data = request.GET.copy()
    data.update(request.POST)
    data.pop("csrfmiddlewaretoken", None)
    return data, f"{request.path}?{data.urlencode()}"


def chart_version(job: Job) -> str:
    """What the drawn curve depends on: the steps reported and the status (an evaluation comes with an epoch's
    last step; the final status with the last points)."""
    return f"{job.status}-{job.progress_step}"


@login_required
def job_chart(request, job_id: int):
    """The loss curve alone: 204 while the version the page drew is still current, 286 (stop polling) once final."""
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    version = chart_version(job)
    if request.GET.get("drawn") == version and not job.is_final:
        return HttpResponse(status=204)
    series = selectors.job_metric_series(job=job, names=("loss", "eval_loss"))
    response = render(request, "jobs/_chart.html", {"job": job, "series": series, "chart_version": version})
    if job.is_final:
        response.status_code = HTMX_STOP_POLLING
    return response


@login_required
@require_POST
def job_count(request):
    """The job form's trainable-parameter count for the method parameters as they stand, polled by htmx while a
    worker counts them."""
    data, poll_url = _fragment_input(request)
    context = {"poll_url": poll_url}
    try:
        model = selectors.base_model_get(actor=request.actor, model_id=int(data.get("base_model", "")))
        method = get_method(data.get("method"))
    except (ValueError, UnknownMethodError):
        return render(request, "jobs/_count.html", {"error": "choose a base model and a method"}, status=400)
    # An unticked checkbox is absent from the form: that means false, not "the default".
    raw = {
        p.name: (METHOD_PREFIX + p.name in data) if p.type == "bool" else data.get(METHOD_PREFIX + p.name)
        for p in method.params
    }
    params, errors = validate_params(method.params, raw)
    if errors:
        context["error"] = f"Fix the {method.label} parameters to see the count: {format_errors(errors)}"
        return render(request, "jobs/_count.html", context)
    defaults = {p.name: p.default for p in method.params}
    if params == defaults and selectors.profile_count(model, method.name):
        context["result"] = selectors.profile_count(model, method.name)  # counted when the model was registered
    else:
        context["result"] = services.trainable_count_request(base_model=model, method=method.name, params=params).result
    return render(request, "jobs/_count.html", context)


@login_required
@require_POST
def job_tokens(request):
    """Token lengths of the chosen text column under the chosen model's tokenizer against the max length, for the
    job form and the dataset page; polled by htmx while a worker counts them."""
    data, poll_url = _fragment_input(request)
    context = {"poll_url": poll_url}
    try:
        dataset = selectors.dataset_get(actor=request.actor, dataset_id=int(data.get("dataset", "")))
        model = selectors.base_model_get(actor=request.actor, model_id=int(data.get("base_model", "")))
    except ValueError:
        return render(request, "jobs/_tokens.html", {"error": "choose a dataset and a base model"}, status=400)
    try:
        stats = services.token_stats_ask(
            dataset=dataset,
            base_model=model,
            task=data.get("task") or JobForm.base_fields["task"].initial,
            **{
                field: data.get(field, "")
                for field in ("text_column", "label_column", "input_column", "messages_column", "template")
            },
        )
    except Refused as exc:
        return render(request, "jobs/_tokens.html", {"error": str(exc)}, status=400)
    max_length, errors = validate_params(
        [p for p in TRAINING_PARAMS if p.name == "max_length"], {"max_length": data.get("p_max_length")}
    )
    if errors:
        context["error"] = f"Fix the maximum length to see how many rows it cuts: {format_errors(errors)}"
        return render(request, "jobs/_tokens.html", context)
    context.update(
        summary=selectors.token_stats_summary(stats, max_length["max_length"]),
        model=model,
        column=services.token_stats_label(stats),
    )
    return render(request, "jobs/_tokens.html", context)


def _job_context(request, job_id: int) -> dict:
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    return {
        "job": job,
        "queue_position": selectors.queue_positions([job.pk]).get(job.pk) if job.status == Job.Status.QUEUED else None,
        "attempts": list(selectors.job_attempts(job=job)),
        "heartbeat_age": (
            (timezone.now() - job.heartbeat_at).total_seconds()
            if job.status == Job.Status.RUNNING and job.heartbeat_at
            else None
        ),
        "progress": selectors.job_progress(job),
        "waiting_reason": waiting_reason(job, workers_online()) if job.status == Job.Status.QUEUED else None,
        "report": selectors.job_report(job=job) if job.status == Job.Status.SUCCEEDED else None,
        "artifact": selectors.job_artifact(job=job) if job.status == Job.Status.SUCCEEDED else None,
        "has_log": job.is_final and selectors.job_artifact(job=job, kind=Artifact.Kind.LOG) is not None,
        "can_train_on": _can_continue(job.method) and not job.group_column,  # many adapters, or many tasks
    }


def _can_continue(method: str) -> bool:
    try:
        return get_method(method).can_continue
    except UnknownMethodError:  # a method a newer studio removed: its adapter still downloads
        return False


@login_required
def job_detail(request, job_id: int):
    context = _job_context(request, job_id)
    job = context["job"]
    context.update(
        series=selectors.job_metric_series(job=job, names=("loss", "eval_loss")), chart_version=chart_version(job)
    )
    if job.status == Job.Status.SUCCEEDED:
        context["merged"] = merged_context(job)
        if not job.group_column or job.task_per_group:  # a group run's page has no playground: many adapters
            context["playground"] = True
            context["compare_choices"] = selectors.playground_compare_choices(job=job)
            context["task_groups"] = selectors.job_task_groups(job=job) if job.group_column else []
    return render(request, "jobs/detail.html", context)


def job_status(request, job_id: int):
    """The live part of the job page, polled by htmx; 286 tells htmx to stop once the job is final."""
    if not request.user.is_authenticated:
        # A session that expired mid-poll: send the whole page to the login form, not into the status card.
        response = HttpResponse(status=HTMX_STOP_POLLING)
        response["HX-Redirect"] = f"{resolve_url(settings.LOGIN_URL)}?next={reverse('job-detail', args=[job_id])}"
        return response
    context = _job_context(request, job_id)
    response = render(request, "jobs/_status.html", context)
    if context["job"].is_final:
        response.status_code = HTMX_STOP_POLLING
    return response


@login_required
@require_POST
def job_cancel(request, job_id: int):
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    require(request.actor, job.team_id, Membership.Role.MEMBER)
    job = runtime.job_cancel(job=job, user=request.user)
    messages.info(request, "Cancelled." if job.status == Job.Status.CANCELLED else "Cancelling: the worker stops it.")
    return redirect("job-detail", job_id=job.pk)


@login_required
@require_POST
def job_resume(request, job_id: int):
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    require(request.actor, job.team_id, Membership.Role.MEMBER)
    try:
        job = runtime.job_resume(job=job, user=request.user)
    except Conflict as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, f"Queued again: {job.notice}.")
    return redirect("job-detail", job_id=job.pk)


@login_required
@require_POST
def job_playground(request, job_id: int):
    """Queue the typed texts (one per line) for the job's adapter; the answer polls until a worker predicts."""
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    require(request.actor, job.team_id, Membership.Role.MEMBER)
    texts = [line for line in request.POST.get("texts", "").splitlines() if line.strip()]
    try:
        keys = ("temperature", "top_p", "max_new_tokens", "compare_base", "compare_job", "group")
        options = {key: request.POST.get(key) for key in keys}
        run = services.playground_run_create(job=job, user=request.user, texts=texts, options=options)
    except ValidationFailed as exc:
        message = (
            "; ".join([exc.message, *exc.errors.values()]) if exc.errors.keys() - {"texts", "job"} else exc.message
        )
        return render(request, "jobs/_playground.html", {"job": job, "error": message}, status=400)
    return render(request, "jobs/_playground.html", {"job": job, "run": run})


@login_required
def job_playground_run(request, job_id: int, run_id: int):
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    run = services.playground_run_refresh(run=selectors.playground_run_get(job=job, run_id=run_id))
    return render(request, "jobs/_playground.html", {"job": job, "run": run})


@login_required
def job_adapter(request, job_id: int):
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    artifact = selectors.job_artifact(job=job)
    if artifact is None:
        raise Http404("this job has no adapter")
    audit_record(team_id=job.team_id, user=request.user, action="adapter.download", target=f"job {job.pk}")
    return artifact_response(artifact)


@login_required
def job_log(request, job_id: int):
    """Every attempt's log, as text: phases, evaluations, checkpoints, errors and the training process's output."""
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    artifact = selectors.job_artifact(job=job, kind=Artifact.Kind.LOG)
    if artifact is None:
        raise Http404("this job has no log yet; it is written when an attempt ends")
    return artifact_response(artifact)


def healthz(request):
    return HttpResponse("ok", content_type="text/plain")
