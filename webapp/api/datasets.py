"""Datasets: upload (streamed, inspected, stored), list, detail, token lengths under a model's tokenizer."""

from typing import Any, Literal

from django.http import HttpResponse
from ninja import Field, File, Form, Router, Schema, Status
from ninja.files import UploadedFile

from jobs import selectors, services
from jobs.dataset_checks import dataset_check_ask_again
from jobs.errors import ValidationFailed
from jobs.models import Dataset
from teams.models import Membership
from teams.permissions import require

from ..uploads import UploadTooLarge, uploaded_file_path
from .paging import clamp_limit, link_next
from .schemas import DatasetDetail, DatasetErrors, DatasetOut, Detail

Role = Membership.Role

router = Router(tags=["datasets"])


@router.post("/datasets", response={201: DatasetOut, 202: DatasetOut, 400: DatasetErrors, 413: Detail})
def dataset_upload(
    request,
    file: File[UploadedFile] = None,
    name: Form[str] = "",
    text_column: Form[str] = "",
    label_column: Form[str] = "",
):
    team = require(request.actor, request.actor.team, Role.MEMBER).team
    if refused := getattr(request, "upload_refused", None):
        return Status(413, {"detail": refused})
    if file is None:
        return Status(400, {"detail": "send the data as a multipart form field named 'file'", "errors": []})
    try:
        with uploaded_file_path(file) as path:
            dataset = services.dataset_create(
                team=team,
                user=request.user,
                name=name,
                path=path,
                filename=file.name or "upload",
                text_column=text_column,
                label_column=label_column,
            )
    except UploadTooLarge as exc:
        return Status(413, {"detail": str(exc)})
    except ValidationFailed as exc:
        return Status(400, {"detail": exc.message, "errors": exc.errors})
    # 202: a large file is stored and its rows are being checked by a worker; poll GET /datasets/{id}.
    return Status(202 if dataset.state == Dataset.State.CHECKING else 201, dataset)


@router.get("/datasets", response=list[DatasetOut])
def dataset_list(
    request, response: HttpResponse, search: str | None = None, before: int | None = None, limit: int = 100
):
    """Your team's datasets, newest first, whose name contains `search` if given: one page of at most `limit`
    (up to 1,000); a `Link: <...>; rel="next"` header gives the next page, absent on the last."""
    datasets, next_before = selectors.dataset_page(
        actor=request.actor, before=before, limit=clamp_limit(limit), search=search, with_warnings=True
    )
    link_next(request, response, next_before)
    return datasets


@router.get("/datasets/{dataset_id}", response=DatasetDetail)
def dataset_detail(request, dataset_id: int):
    dataset = selectors.dataset_get(actor=request.actor, dataset_id=dataset_id)
    dataset_check_ask_again(dataset)
    return dataset


@router.delete("/datasets/{dataset_id}", response={204: None, 409: Detail})
def dataset_delete(request, dataset_id: int):
    """Delete a dataset and its file; 409 while a job uses it."""
    dataset = selectors.dataset_get(actor=request.actor, dataset_id=dataset_id)
    require(request.actor, request.actor.team, Role.MEMBER)
    try:
        services.dataset_delete(actor_user=request.user, dataset=dataset)
    except ValidationFailed as exc:
        return Status(409, {"detail": exc.message})
    return Status(204, None)


class TokenStatsOut(Schema):
    status: Literal["counting", "done", "failed"]
    rows: int | None = None
    p50: int | None = None
    p95: int | None = None
    max: int | None = None
    max_length: int | None = None
    truncated_rows: int | None = None
    truncated_share: float | None = None
    warning: str | None = Field(None, description="set when more than 5% of the rows would be cut")
    sft: dict[str, Any] | None = Field(
        None,
        description="SFT only: rejected_count and rejected rows [{row, message}], "
        "masked_count and masked_rows (answers the max length cuts away entirely), "
        "needed_length (the max length that keeps every answer)",
    )
    error: str | None = None


@router.get("/datasets/{dataset_id}/token-stats", response={200: TokenStatsOut, 202: TokenStatsOut, 400: Detail})
def dataset_token_stats(
    request,
    dataset_id: int,
    base_model: int,
    column: str = "",
    max_length: int = 128,
    task: str = "text-classification",
    label_column: str = "",
    input_column: str = "",
    messages_column: str = "",
    template: str = "",
):
    """Token lengths of a column under a base model's tokenizer (p50, p95, max) and how many rows `max_length`
    cuts. With task=sft: of whole examples as the template builds them from column (the prompt), label_column
    (the response), input_column or messages_column, plus the rows that cannot be read and those whose answer
    the max length cuts away. Counted once by a worker: 202 with status "counting" until then; ask again."""
    dataset = selectors.dataset_get(actor=request.actor, dataset_id=dataset_id)
    model = selectors.base_model_get(actor=request.actor, model_id=base_model)
    if max_length < 1:
        return 400, {"detail": "max_length must be a positive number of tokens"}
    stats = services.token_stats_ask(
        dataset=dataset,
        base_model=model,
        task=task,
        text_column=column,
        label_column=label_column,
        input_column=input_column,
        messages_column=messages_column,
        template=template,
    )  # Refused: a 400
    summary = selectors.token_stats_summary(stats, max_length)
    if summary is None:
        return 202, {"status": "counting"}
    if "error" in summary:
        return 200, {"status": "failed", "error": summary["error"]}
    return 200, {"status": "done", **summary}
