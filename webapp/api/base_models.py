"""Base models: the ones a team may train on; admins add and remove their team's own."""

from ninja import Field, Router, Schema, Status

from jobs import selectors, services
from jobs.errors import ValidationFailed
from teams.errors import Conflict, Forbidden
from teams.models import Membership
from teams.permissions import require

from .schemas import Detail, FieldErrors, ModelOut

Role = Membership.Role

router = Router(tags=["models"])


@router.get("/models", response=list[ModelOut])
def model_list(request):
    return selectors.base_model_list(actor=request.actor)


class ModelIn(Schema):
    name: str
    source: str = Field(
        description="bundled/all-MiniLM-L6-v2, local:<folder under the model root> or a Hugging "
        "Face id such as owner/name (safetensors weights only)"
    )
    revision: str = Field(
        "",
        description="hub models: the 40-character commit id; a branch or tag (empty: the "
        "default branch) is resolved to its commit when the hub can be reached",
    )
    description: str = ""


@router.post("/models", response={201: ModelOut, 400: FieldErrors, 403: Detail})
def model_add(request, payload: ModelIn):
    """Offer a base model to your team (admins). Nothing is downloaded; a hub model is pinned to a commit."""
    try:
        model = services.base_model_add(
            actor=request.actor,
            name=payload.name,
            source=payload.source,
            revision=payload.revision,
            description=payload.description,
        )
    except ValidationFailed as exc:
        return Status(400, {"detail": exc.message, "errors": exc.errors})
    return Status(201, model)


@router.delete("/models/{model_id}", response={204: None, 403: Detail, 404: Detail, 409: Detail})
def model_remove(request, model_id: int):
    """Remove one of your team's models (admins); not one offered to every team (403) or one jobs used (409)."""
    actor = require(request.actor, request.actor.team, Role.ADMIN)
    model = selectors.team_base_model_get(team=actor.team, model_id=model_id)
    try:
        services.base_model_remove(actor=actor, model=model)
    except (Forbidden, Conflict) as exc:
        return Status(403 if isinstance(exc, Forbidden) else 409, {"detail": str(exc)})
    return Status(204, None)
