"""Writes for base models: the bundled one, those the studio's operator registers, and those team admins add."""

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q

from peftcore import gemma_bundle
from peftcore.models import BUNDLED_MODEL_ID, LOCAL_PREFIX, ModelRefError, is_hub_id, pin_hub_revision, resolve_model
from teams.audit import audit_record
from teams.models import Membership
from teams.permissions import require

from .. import dispatch
from ..errors import Conflict, Forbidden, ValidationFailed
from ..models import BaseModel, Job


def base_model_register(*, name: str, source: str, team=None, revision: str = "", description: str = "") -> BaseModel:
    obj, created = BaseModel.objects.get_or_create(
        source=source, revision=revision, team=team, defaults={"name": name, "description": description}
    )
    if created or (obj.profile or {}).get(DEFAULTS_KEY) != methods_defaults_key():  # none yet, or stale
        dispatch.publish_on_commit(dispatch.PROFILE_BASE_MODEL, obj.pk)
    return obj


DEFAULTS_KEY = "_defaults"  # which method defaults the counts are for: a release that changes them recounts


def methods_defaults_key() -> str:
    """A digest of every method's default parameters (the profile counts each method at its defaults)."""
    import hashlib
    import json

    from peftcore.methods import all_methods

    defaults = {m.name: {p.name: p.default for p in m.params} for m in all_methods()}
    return hashlib.sha256(json.dumps(defaults, sort_keys=True).encode()).hexdigest()[:16]


def base_model_set_profile(*, model: BaseModel, rows: list[dict]) -> BaseModel:
    """Store each method's trainable-parameter count (or why it does not fit) from `peftcore methods --json`."""
    model.profile = {
        row["name"]: row["count"] if row.get("count") else {"refused": row.get("refused", "")} for row in rows
    }
    model.profile[DEFAULTS_KEY] = methods_defaults_key()
    model.save(update_fields=["profile"])
    return model


def base_model_register_bundled() -> BaseModel:
    """The bundled models: MiniLM always; Gemma 3 270M when its package is installed (converted once by the
    maintenance worker: "preparing" until then)."""
    if settings.BUNDLED_GEMMA and gemma_bundle.installed():
        base_model_register_gemma()
    return base_model_register(
        name="all-MiniLM-L6-v2 (bundled)",
        source=BUNDLED_MODEL_ID,
        description="22M-parameter BERT encoder shipped with the studio; fast on a CPU.",
    )


def base_model_register_gemma() -> BaseModel:
    ready = gemma_bundle.state(settings.MODEL_ROOT) == gemma_bundle.READY
    obj, created = BaseModel.objects.get_or_create(
        source=gemma_bundle.MODEL_ID,
        revision="",
        team=None,
        defaults={
            "name": "Gemma 3 270M (bundled)",
            "description": "Google's 268M-parameter base language model, for SFT; converted from the bundled GGUF file",
            "state": BaseModel.State.READY if ready else BaseModel.State.PREPARING,
        },
    )
    if not ready:  # not converted on this machine yet (or it failed before): in the background, again if need be
        if obj.state != BaseModel.State.PREPARING:
            base_model_set_state(model=obj, state=BaseModel.State.PREPARING)
        dispatch.publish_on_commit(dispatch.PREPARE_BASE_MODEL, obj.pk)
    elif obj.state != BaseModel.State.READY:
        base_model_set_state(model=obj, state=BaseModel.State.READY)
    elif created or (obj.profile or {}).get(DEFAULTS_KEY) != methods_defaults_key():
        dispatch.publish_on_commit(dispatch.PROFILE_BASE_MODEL, obj.pk)
    return obj


def base_model_set_state(*, model: BaseModel, state: str, detail: str = "") -> BaseModel:
    model.state, model.state_detail = state, detail[-2000:]
    model.save(update_fields=["state", "state_detail"])
    if state == BaseModel.State.READY:
        dispatch.publish_on_commit(dispatch.PROFILE_BASE_MODEL, model.pk)
    return model


HUB_LOOKUP_SECONDS = 10  # how long adding a hub model waits for the hub to name the commit


def base_model_add(*, actor, name: str, source: str, revision: str = "", description: str = "") -> BaseModel:
    """A team admin offers a base model to their team. The reference is checked without downloading anything
    (the web process has no torch); a hub model is pinned to a commit id, so every job trains on the same
    weights even when the hub's branch moves on."""
    require(actor, actor.team, Membership.Role.ADMIN)
    fields = {"name": name, "source": source, "revision": revision, "description": description}
    if nul := {field: "remove the NUL (\\u0000) character" for field, value in fields.items() if "\x00" in value}:
        raise ValidationFailed("the model was not added; fix the fields named", errors=nul)  # Postgres refuses it
    name, source, revision, description = (value.strip() for value in fields.values())
    errors = {}
    if not name or len(name) > 200:
        errors["name"] = "give the model a name of at most 200 characters"
    if len(description) > 300:
        errors["description"] = "keep the description to 300 characters"
    if source == BUNDLED_MODEL_ID or source.startswith(LOCAL_PREFIX):
        if revision:
            errors["revision"] = "only Hugging Face models have a revision; leave it empty"
        try:
            resolve_model(source, model_root=settings.MODEL_ROOT)  # a folder check only: nothing is loaded
        except ModelRefError as exc:
            errors["source"] = str(exc)
    elif is_hub_id(source):
        try:
            revision = pin_hub_revision(source, revision, timeout=HUB_LOOKUP_SECONDS)
        except ModelRefError as exc:
            errors["revision"] = str(exc)
    else:
        errors["source"] = (
            f"{source!r} is not a model reference; use {BUNDLED_MODEL_ID}, local:<folder under "
            "the model root> or a Hugging Face id such as owner/name"
        )
    if not errors and (
        same := BaseModel.objects.filter(
            Q(team=actor.team) | Q(team__isnull=True), source=source, revision=revision
        ).first()
    ):
        errors["source"] = (
            f"{source}{'@' + revision[:12] if revision else ''} is already offered"
            f"{' to every team' if same.team_id is None else ''} as '{same.name}'"
        )
    if errors:
        raise ValidationFailed("the model was not added; fix the fields named", errors=errors)
    try:
        with transaction.atomic():
            model = BaseModel.objects.create(
                team=actor.team, name=name, source=source, revision=revision, description=description
            )
            audit_record(
                team_id=actor.team_id,
                user=actor.user,
                action="model.add",
                target=f"model {model.pk}",
                name=name,
                source=source,
                revision=revision,
            )
    except IntegrityError:  # another admin added the same model a moment ago
        raise ValidationFailed(
            "the model was not added; fix the fields named",
            errors={"source": f"{source} is already offered to {actor.team.name}"},
        ) from None
    dispatch.publish_on_commit(dispatch.PROFILE_BASE_MODEL, model.pk)
    return model


def base_model_remove(*, actor, model: BaseModel) -> None:
    """Remove one of the team's own models; one that jobs were trained on stays (their reports, adapters and
    resumes refer to it)."""
    require(actor, actor.team, Membership.Role.ADMIN)
    if model.team_id is None:
        raise Forbidden(f"'{model.name}' is offered to every team by the studio's operator; a team cannot remove it")
    if model.team_id != actor.team_id:
        raise ValueError("a team removes only its own models; look the model up through the team's selector")
    with transaction.atomic():
        BaseModel.objects.select_for_update().filter(pk=model.pk).first()  # a job created meanwhile waits
        used = Job.objects.filter(base_model=model).count()
        if used:
            raise Conflict(
                f"'{model.name}' cannot be removed: {used} job(s) of {actor.team.name} were trained on it, and their "
                "results, adapters and resumes need it"
            )
        audit_record(
            team_id=actor.team_id,
            user=actor.user,
            action="model.remove",
            target=f"model {model.pk}",
            name=model.name,
            source=model.source,
            revision=model.revision,
        )
        model.delete()
