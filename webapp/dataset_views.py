"""Dataset pages: upload and list, one dataset (with its check's progress while a worker checks it), delete."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from jobs import comparison, selectors, services
from jobs.dataset_checks import dataset_check_ask_again
from jobs.errors import ValidationFailed
from jobs.models import Dataset
from teams.models import Membership
from teams.permissions import require

from .forms import DatasetUploadForm
from .uploads import UploadTooLarge, uploaded_file_path


@login_required
def dataset_list(request):
    form = DatasetUploadForm()
    row_errors = None
    if request.method == "POST":
        form = DatasetUploadForm(request.POST, request.FILES)
        if refused := getattr(request, "upload_refused", None):
            form.add_error(None, refused)
        elif form.is_valid():
            upload = form.cleaned_data["file"]
            team = require(request.actor, request.actor.team, Membership.Role.MEMBER).team
            try:
                with uploaded_file_path(upload) as path:
                    dataset = services.dataset_create(
                        team=team,
                        user=request.user,
                        name=form.cleaned_data["name"],
                        path=path,
                        filename=upload.name,
                        text_column=form.cleaned_data["text_column"],
                        label_column=form.cleaned_data["label_column"],
                    )
            except UploadTooLarge as exc:
                form.add_error("file", str(exc))
            except ValidationFailed as exc:
                form.add_error("file", exc.message)
                row_errors = exc.errors
            else:
                if dataset.state == Dataset.State.CHECKING:
                    messages.success(
                        request, f"Stored '{dataset.name}'; its rows are being checked on a worker, progress below."
                    )
                else:
                    messages.success(request, f"Stored '{dataset.name}': {dataset.rows:,} rows.")
                if request.headers.get("HX-Request"):
                    # htmx would follow a 302 inside its XHR; this makes the browser itself navigate.
                    response = HttpResponse(status=204)
                    response["HX-Redirect"] = reverse("dataset-detail", args=[dataset.pk])
                    return response
                return redirect("dataset-detail", dataset_id=dataset.pk)
    before, search = _positive(request.GET.get("before")), request.GET.get("search", "").strip()[:200]
    datasets, next_before = selectors.dataset_page(actor=request.actor, before=before, search=search)
    pages = {"search": search, "paged": before is not None, "next_before": next_before}
    return render(
        request,
        "datasets/list.html",
        {"form": form, "datasets": datasets, "row_errors": row_errors, **pages},
        status=400 if row_errors or form.errors else 200,
    )


@login_required
def dataset_detail(request, dataset_id: int):
    dataset = selectors.dataset_get(actor=request.actor, dataset_id=dataset_id)
    dataset_check_ask_again(dataset)
    # Token lengths under the first model the form would offer, at the max length the studio would choose.
    model = selectors.base_model_list(actor=request.actor).first()
    # One board per kind of task trained on the dataset: classification by accuracy, generation by ROUGE-L.
    leaderboard = comparison.dataset_leaderboard(actor=request.actor, dataset_id=dataset.pk)
    generation_board = comparison.dataset_leaderboard(actor=request.actor, dataset_id=dataset.pk, metric="rouge_l")
    return render(
        request,
        "datasets/detail.html",
        {
            "dataset": dataset,
            "model": model,
            "leaderboard": leaderboard,
            "generation_board": generation_board,
        },
    )


@login_required
def dataset_check(request, dataset_id: int):
    """The check's progress, polled by the dataset page while it runs; once it ends, the whole page reloads."""
    dataset = selectors.dataset_get(actor=request.actor, dataset_id=dataset_id)
    dataset_check_ask_again(dataset)
    if dataset.state != Dataset.State.CHECKING:
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"
        return response
    return render(request, "datasets/_check.html", {"dataset": dataset})


@login_required
@require_POST
def dataset_delete(request, dataset_id: int):
    dataset = selectors.dataset_get(actor=request.actor, dataset_id=dataset_id)
    require(request.actor, request.actor.team, Membership.Role.MEMBER)
    try:
        services.dataset_delete(actor_user=request.user, dataset=dataset)
    except ValidationFailed as exc:
        messages.error(request, exc.message)
        return redirect("dataset-detail", dataset_id=dataset.pk)
    messages.success(request, f"Deleted '{dataset.name}'.")
    return redirect("dataset-list")


def _positive(value: str | None) -> int | None:
    """A page cursor from the query string: a whole number above 0, else none (the first page)."""
    return int(value) if value and value.isdigit() and int(value) > 0 else None


@login_required
@require_POST
def dataset_columns(request, dataset_id: int):
    """Pick (or change) the text and label columns from the file's own columns, after seeing its preview."""
    dataset = selectors.dataset_get(actor=request.actor, dataset_id=dataset_id)
    require(request.actor, request.actor.team, Membership.Role.MEMBER)
    try:
        dataset = services.dataset_set_columns(
            dataset=dataset,
            user=request.user,
            text_column=request.POST.get("text_column", ""),
            label_column=request.POST.get("label_column", ""),
        )
    except ValidationFailed as exc:
        errors = exc.errors if isinstance(exc.errors, list) else []
        shown = "; ".join(f"row {e['row']}: {e['message']}" if e.get("row") else e["message"] for e in errors[:5])
        messages.error(request, exc.message + (f" ({shown})" if shown else ""))
    else:
        if dataset.state == Dataset.State.CHECKING:
            messages.success(request, "Checking the rows again for these columns, on a worker.")
        else:
            messages.success(request, "Columns saved; the label counts below are for them.")
    return redirect("dataset-detail", dataset_id=dataset.pk)


@login_required
@require_POST
def dataset_label_names(request, dataset_id: int):
    """Name the labels ("1" -> "positive"): one field per counted label, label_<n> in the order of the counts."""
    dataset = selectors.dataset_get(actor=request.actor, dataset_id=dataset_id)
    require(request.actor, request.actor.team, Membership.Role.MEMBER)
    labels = list((dataset.stats.get("labels") or {}).keys())
    names = {label: request.POST.get(f"label_{i}", "") for i, label in enumerate(labels)}
    try:
        services.dataset_set_label_names(dataset=dataset, user=request.user, names=names)
    except ValidationFailed as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Label names saved: reports, compare and the playground use them.")
    return redirect("dataset-detail", dataset_id=dataset.pk)
