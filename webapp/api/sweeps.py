"""Sweeps: start one from a job's settings, read its table, cancel every job of it (issue 21)."""

from typing import Any

from ninja import Field, Router, Schema, Status

from jobs import selectors, services
from jobs.errors import ValidationFailed
from teams.models import Membership
from teams.permissions import require

from .jobs import _get_or_400
from .schemas import FieldErrors

router = Router(tags=["sweeps"])


class SweepIn(Schema):
    base_job: int = Field(description="a job of your team whose data, columns and typed settings every job shares")
    methods: list[str] = Field(description="methods to try (GET /methods lists them)")
    grid: dict[str, list[float]] = Field(
        {}, description='at most two of r, learning_rate, epochs, each with 1 to 8 values, e.g. {"r": [4, 8, 16]}'
    )
    budget: int | None = Field(None, description="random search: run this many of the grid's points, drawn at random")
    name: str = ""


class SweepRow(Schema):
    job: int
    name: str
    method: str
    values: dict[str, Any]
    status: str
    metric: str
    score: float | None
    trainable_params: int | None
    train_seconds: float | None
    best: bool


class SweepOut(Schema):
    id: int
    name: str
    base_job: int | None
    axes: dict[str, Any]
    budget: int | None
    jobs: list[SweepRow]


def _out(sweep) -> dict:
    rows = selectors.sweep_rows(sweep=sweep)
    return {
        "id": sweep.pk,
        "name": sweep.name,
        "base_job": sweep.base_job_id,
        "axes": sweep.axes,
        "budget": sweep.budget,
        "jobs": [
            {
                "job": row["job"].pk,
                "name": row["job"].name,
                "method": row["job"].method,
                "values": row["values"],
                "status": row["job"].status,
                "metric": row["metric"],
                "score": row["score"],
                "trainable_params": row["trainable"],
                "train_seconds": row["seconds"],
                "best": row.get("best", False),
            }
            for row in rows
        ],
    }


def _whole(grid: dict[str, list[float]]) -> dict[str, list]:
    """JSON numbers arrive as floats: a rank or an epoch count that is whole goes on as an int."""
    return {
        name: [int(v) if name != "learning_rate" and float(v).is_integer() else v for v in values]
        for name, values in grid.items()
    }


@router.post("/sweeps", response={201: SweepOut, 400: FieldErrors})
def sweep_create(request, payload: SweepIn):
    team = require(request.actor, request.actor.team, Membership.Role.MEMBER).team
    try:
        base = _get_or_400(selectors.job_get, "base_job", actor=request.actor, job_id=payload.base_job)
        sweep = services.sweep_create(
            team=team,
            user=request.user,
            base_job=base,
            methods=payload.methods,
            grid=_whole(payload.grid),
            budget=payload.budget,
            name=payload.name,
        )
    except ValidationFailed as exc:
        return Status(400, {"detail": exc.message, "errors": exc.errors})
    return Status(201, _out(sweep))


@router.get("/sweeps/{sweep_id}", response=SweepOut)
def sweep_detail(request, sweep_id: int):
    return _out(selectors.sweep_get(actor=request.actor, sweep_id=sweep_id))


@router.post("/sweeps/{sweep_id}/cancel", response=SweepOut)
def sweep_cancel(request, sweep_id: int):
    sweep = selectors.sweep_get(actor=request.actor, sweep_id=sweep_id)
    require(request.actor, sweep.team_id, Membership.Role.MEMBER)
    services.sweep_cancel(sweep=sweep, user=request.user)
    return _out(sweep)
