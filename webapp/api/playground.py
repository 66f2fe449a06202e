"""The playground: texts tried on a finished job's adapter, answered by a worker."""

from typing import Literal

from ninja import Field, Router, Schema

from jobs import selectors, services
from jobs.errors import ValidationFailed
from teams.models import Membership
from teams.permissions import require

from .schemas import FieldErrors

Role = Membership.Role

router = Router(tags=["playground"])


class PlaygroundIn(Schema):
    texts: list[str] = Field(
        description="texts for the job's adapter (at most 32): texts to classify, or the "
        "prompts (SFT) or inputs (seq2seq) a generation adapter answers"
    )


class Prediction(Schema):
    label: str
    probabilities: dict[str, float]


class Generation(Schema):
    generation: str


class PlaygroundOut(Schema):
    id: int
    status: Literal["pending", "done", "failed"]
    texts: list[str]
    predictions: list[Prediction] | None = Field(None, description="a text classification job's labels")
    generations: list[Generation] | None = Field(None, description="an SFT or seq2seq job's generated texts")
    error: str | None = None


def _playground_out(run) -> dict:
    result = run.result
    status = "pending" if result is None else ("failed" if "error" in result else "done")
    return {
        "id": run.pk,
        "status": status,
        "texts": run.texts,
        "predictions": (result or {}).get("predictions"),
        "generations": (result or {}).get("generations"),
        "error": (result or {}).get("error"),
    }


@router.post("/jobs/{job_id}/playground", response={202: PlaygroundOut, 400: FieldErrors})
def playground_create(request, job_id: int, body: PlaygroundIn):
    """Try a succeeded job's adapter: a worker predicts labels, or generates text for an SFT or seq2seq job (the
    web process loads no model). 202 with the run's id; poll GET .../playground/{id} until status is done or
    failed."""
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    require(request.actor, job.team_id, Role.MEMBER)
    try:
        run = services.playground_run_create(job=job, user=request.user, texts=body.texts)
    except ValidationFailed as exc:
        return 400, {"detail": exc.message, "errors": exc.errors}
    return 202, _playground_out(run)


@router.get("/jobs/{job_id}/playground/{run_id}", response=PlaygroundOut)
def playground_get(request, job_id: int, run_id: int):
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    return _playground_out(services.playground_run_refresh(run=selectors.playground_run_get(job=job, run_id=run_id)))
