"""Moving the team models from webapp to teams keeps every row: a database built with the migrations as they were
before the move (webapp 0003, jobs 0009), holding a team and everything that hangs on it, migrates forward with
all of it reachable through the new models, and a token made before the move still works in its team only."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [("webapp", "0003_teams_tokens_invitations"), ("jobs", "0009_notifications")]
TOKEN, INVITATION = "fts_made-before-the-move", "inv_made-before-the-move"
TEAM_MODELS = ("team", "membership", "auditentry", "apitoken", "invitation")


def _migrate_back():
    """Migrate to BEFORE; the models as they were then (every other app at its latest)."""
    executor = MigrationExecutor(connection)
    targets = [node for node in executor.loader.graph.leaf_nodes() if node[0] not in ("webapp", "jobs", "teams")]
    targets += BEFORE
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def _old_rows(old) -> dict:
    """A team with a member, a token, an invitation, an audit entry, a dataset, a model, a job and a webhook, written
    with the models as they were before the move."""
    from teams.models import hash_token

    user = old.get_model("auth", "User").objects.create(username="ann", password="!")
    other = old.get_model("auth", "User").objects.create(username="otto", password="!")
    team = old.get_model("webapp", "Team").objects.create(name="Old team", max_concurrent_jobs=2)
    elsewhere = old.get_model("webapp", "Team").objects.create(name="Elsewhere")
    Membership = old.get_model("webapp", "Membership")
    Membership.objects.create(team=team, user=user, role="owner")
    # ann switched to Elsewhere last: her token must still reach only its own team.
    Membership.objects.create(team=elsewhere, user=user, role="viewer", selected_at=timezone.now())
    Membership.objects.create(team=elsewhere, user=other, role="member")
    token = old.get_model("webapp", "ApiToken").objects.create(
        user=user, team=team, name="ci", key_hash=hash_token(TOKEN), hint=TOKEN[:8]
    )
    invitation = old.get_model("webapp", "Invitation").objects.create(
        team=team,
        role="member",
        email="new@example.com",
        key_hash=hash_token(INVITATION),
        created_by=user,
        expires_at=timezone.now() + timedelta(days=1),
    )
    entry = old.get_model("webapp", "AuditEntry").objects.create(
        team=team, user=user, action="member.add", target="user ann", detail={"role": "owner"}
    )
    blob = old.get_model("jobs", "Blob").objects.create(sha256="0" * 64, complete=True)
    dataset = old.get_model("jobs", "Dataset").objects.create(
        team=team,
        created_by=user,
        name="reviews",
        filename="reviews.csv",
        format="csv",
        blob=blob,
        size_bytes=0,
        sha256="0" * 64,
        rows=1,
        columns=["text", "label"],
    )
    model = old.get_model("jobs", "BaseModel").objects.create(team=team, name="own", source="local:own")
    job = old.get_model("jobs", "Job").objects.create(
        team=team, created_by=user, dataset=dataset, base_model=model, method="lora"
    )
    webhook = old.get_model("jobs", "Webhook").objects.create(
        team=team, url="https://example.com/hook", secret="whsec_x", events=["failed"], created_by=user
    )
    ContentType = old.get_model("contenttypes", "ContentType")
    ContentType.objects.filter(app_label="teams").delete()  # a database from before the teams app
    content_types = {m: ContentType.objects.get_or_create(app_label="webapp", model=m)[0].pk for m in TEAM_MODELS}
    return {
        "team": team.pk,
        "elsewhere": elsewhere.pk,
        "token": token.pk,
        "invitation": invitation.pk,
        "entry": entry.pk,
        "dataset": dataset.pk,
        "model": model.pk,
        "job": job.pk,
        "webhook": webhook.pk,
        "content_types": content_types,
    }


def test_moving_the_team_models_keeps_every_row_and_reference(transactional_db):
    before = _old_rows(_migrate_back())
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    from django.contrib.contenttypes.models import ContentType

    from jobs import selectors
    from jobs.models import BaseModel, Dataset, Job, Webhook
    from teams.models import ApiToken, AuditEntry, Invitation, Membership, Team
    from teams.services import api_token_authenticate, invitation_open

    team = Team.objects.get(pk=before["team"])
    assert team.name == "Old team" and team.max_concurrent_jobs == 2
    assert {(m.user.username, m.role) for m in Membership.objects.filter(team=team)} == {("ann", "owner")}
    assert Membership.objects.filter(team_id=before["elsewhere"]).count() == 2
    assert list(team.api_tokens.values_list("pk", flat=True)) == [before["token"]]
    assert list(team.invitations.values_list("pk", flat=True)) == [before["invitation"]]
    assert invitation_open(INVITATION).team == team
    entry = AuditEntry.objects.get(pk=before["entry"])
    assert (entry.team, entry.user.username, entry.detail) == (team, "ann", {"role": "owner"})
    assert [d.pk for d in team.datasets.all()] == [before["dataset"]]
    assert [j.pk for j in team.jobs.all()] == [before["job"]]
    assert [w.pk for w in team.webhooks.all()] == [before["webhook"]]
    assert BaseModel.objects.get(pk=before["model"]).team == team
    assert Job.objects.get(pk=before["job"]).dataset == Dataset.objects.get(pk=before["dataset"])
    assert Webhook.objects.get(pk=before["webhook"]).team == team

    # The token made before the move acts in its own team, though its user works in another on the pages.
    actor = api_token_authenticate(raw=TOKEN)
    assert actor.team == team and actor.role == "owner" and actor.token.pk == before["token"]
    assert [j.pk for j in selectors.job_list(actor=actor)] == [before["job"]]
    assert selectors.dataset_get(actor=actor, dataset_id=before["dataset"]).name == "reviews"

    # The tables are the teams app's now, their identity sequences and foreign keys came along, and the content
    # types (what admin log entries and permissions point at) are the same rows, relabelled.
    assert {m._meta.db_table for m in (Team, Membership, AuditEntry, ApiToken, Invitation)} == {
        f"teams_{m}" for m in TEAM_MODELS
    }
    tables = set(connection.introspection.table_names())
    assert {f"teams_{m}" for m in TEAM_MODELS} <= tables and not {f"webapp_{m}" for m in TEAM_MODELS} & tables
    newer = Team.objects.create(name="After the move")
    assert newer.pk > before["elsewhere"]
    Membership.objects.create(team=newer, user=actor.user, role="member")
    for model, pk in before["content_types"].items():
        assert ContentType.objects.get(pk=pk).app_label == "teams", model
    assert ContentType.objects.get_for_model(Team).pk == before["content_types"]["team"]
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        # The foreign keys still hold in the database: no membership of a team that is not there.
        cursor.execute(
            "INSERT INTO teams_membership (team_id, user_id, role, created_at) VALUES (%s, %s, 'member', now())",
            [10**9, actor.user.pk],
        )
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
