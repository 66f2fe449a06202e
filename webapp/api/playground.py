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
    temperature: float | None = Field(None, description="generation: 0 (default) is greedy; up to 2 samples")
    top_p: float | None = Field(None, description="generation, when sampling: nucleus share, 0.01 to 1")
    max_new_tokens: int | None = Field(None, description="generation: at most this many tokens (1 to 256; 64)")
    compare_base: bool = Field(False, description="generation: also write the base model's answers")
    group: str | None = Field(
        None,
        description="an adapter with a task per group (poly, multitask prompt tuning): the group whose task answers",
    )
    compare_job: int | None = Field(
        None,
        description="generation: also write with this job's adapter (a succeeded generation job of the team on "
        "the same base model, e.g. the SFT job a DPO job started from)",
    )


class Prediction(Schema):
    label: str
    probabilities: dict[str, float]


class Generation(Schema):
    generation: str
    base_generation: str | None = None
    compare_generation: str | None = Field(None, description="the compare_job adapter's answer")


class Partial(Schema):
    generations: list[str] | None = None
    base_generations: list[str] | None = None
    compare_generations: list[str] | None = None


class PlaygroundOut(Schema):
    id: int
    status: Literal["pending", "done", "failed"]
    texts: list[str]
    predictions: list[Prediction] | None = Field(None, description="a text classification job's labels")
    generations: list[Generation] | None = Field(None, description="an SFT or seq2seq job's generated texts")
    error: str | None = None
    partial: Partial | None = Field(None, description="generation: the text written so far, while pending")
    compare_name: str | None = Field(None, description="the job whose adapter wrote compare_generation, if any")


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
        "partial": run.partial if result is None else None,
        "compare_name": (run.options or {}).get("compare_name"),
    }


@router.post("/jobs/{job_id}/playground", response={202: PlaygroundOut, 400: FieldErrors})
def playground_create(request, job_id: int, body: PlaygroundIn):
    """Try a succeeded job's adapter: a worker predicts labels, or generates text for an SFT or seq2seq job (the
    web process loads no model). 202 with the run's id; poll GET .../playground/{id} until status is done or
    failed."""
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    require(request.actor, job.team_id, Role.MEMBER)
    try:
        options = body.dict(include={"temperature", "top_p", "max_new_tokens", "compare_base", "compare_job", "group"})
        run = services.playground_run_create(job=job, user=request.user, texts=body.texts, options=options)
    except ValidationFailed as exc:
        return 400, {"detail": exc.message, "errors": exc.errors}
    return 202, _playground_out(run)


@router.get("/jobs/{job_id}/playground/{run_id}", response=PlaygroundOut)
def playground_get(request, job_id: int, run_id: int):
    job = selectors.job_get(actor=request.actor, job_id=job_id)
    return _playground_out(services.playground_run_refresh(run=selectors.playground_run_get(job=job, run_id=run_id)))
