"""Deleting a team with everything it owns, its stored bytes included."""

import logging

from django.db import transaction

from teams.models import Team

from ..errors import Conflict, Refused
from ..models import Artifact, Blob, Dataset, Job

log = logging.getLogger(__name__)


def team_delete(*, actor, confirm_name: str) -> None:
    """Delete the actor's team with everything in it: members, datasets, jobs, adapters, reports, models,
    tokens, invitations and their stored bytes. Owners only (the caller checks the role); refused while a job of
    the team is queued or running, and unless the team's name is typed back."""
    team = actor.team
    team_id = team.pk
    if confirm_name.strip() != team.name:
        raise Refused(f"type the team's name, {team.name}, to confirm deleting it")
    with transaction.atomic():
        Team.objects.select_for_update().get(pk=team.pk)  # job_create locks this row too: no job slips in
        active = Job.objects.filter(team=team, status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).count()
        if active:
            raise Conflict(f"{team.name} has {active} queued or running job(s); cancel them first")
        # Blobs are shared by reference (PROTECT), so the rows pointing at them go first, then the bytes.
        blob_ids = {
            *Dataset.objects.filter(team=team).values_list("blob_id", flat=True),
            *Artifact.objects.filter(job__team=team).values_list("blob_id", flat=True),
            *Job.objects.filter(team=team, checkpoint__isnull=False).values_list("checkpoint_id", flat=True),
        }
        # Jobs point at datasets and at each other with PROTECT; unhook and delete them before the team.
        jobs = Job.objects.filter(team=team)
        jobs.exclude(start_from=None).update(start_from=None)
        jobs.delete()
        team.delete()
        Blob.objects.filter(pk__in=blob_ids).delete()
    # The team's audit log goes with it, so the deletion is logged by the server.
    log.warning("team %r (id %s) deleted by %s", team.name, team_id, actor.user.username)
