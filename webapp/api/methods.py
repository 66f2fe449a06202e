"""The PEFT methods and training parameters (schemas the forms are built from) and the recommended method."""

from typing import Any

from ninja import Field, Router, Schema

from jobs import selectors
from peftcore.methods import methods_as_json
from peftcore.recommend import recommend
from peftcore.schema import schema_as_json
from peftcore.tasks import UnknownTaskError, get_task
from peftcore.training_params import TRAINING_PARAMS

from .schemas import Detail

router = Router(tags=["methods"])


@router.get("/methods", response=list[dict[str, Any]])
def method_list(request, model: int | None = None):
    """Every PEFT method with its parameter schema (defaults, bounds, help). With `model` (a base model id),
    each carries `count`: trainable parameters at its defaults on that model, or why it does not fit
    (null until a worker has counted them)."""
    methods = methods_as_json()
    if model is not None:
        base_model = selectors.base_model_get(actor=request.actor, model_id=model)
        for row in methods:
            row["count"] = selectors.profile_count(base_model, row["name"])
    return methods


class RecommendationOut(Schema):
    method: str
    reason: str
    rows: int = Field(description="the training rows the recommendation is for")
    benchmark_rows: int | None = Field(None, description="the benchmarked size the choice comes from")
    accuracy: float | None = None
    trainable: int | None = None
    runner_up: str | None = None
    confidence: str = Field(description='"clear winner", "no clear winner" (then LoRA) or "no benchmark"')
    runs: int = Field(0, description="benchmark runs at that size (datasets x seeds) the choice rests on")


@router.get("/methods/recommended", response={200: RecommendationOut, 400: Detail})
def method_recommended(request, task: str = "text-classification", rows: int | None = None, dataset: int | None = None):
    """The method the studio recommends for a task and a number of training rows (`rows`, or the rows of
    `dataset`), chosen from the studio's own benchmark table, with the reason."""
    try:
        get_task(task)
    except UnknownTaskError as exc:
        return 400, {"detail": str(exc)}
    if dataset is not None:
        rows = selectors.dataset_get(actor=request.actor, dataset_id=dataset).rows
    if rows is None or rows < 1:
        return 400, {"detail": "give rows (a positive number of training rows) or dataset (a dataset id)"}
    return 200, {**recommend(task, rows).as_json(), "rows": rows}


@router.get("/training-params", response=list[dict[str, Any]])
def training_params(request):
    return schema_as_json(TRAINING_PARAMS)
