"""Team, Membership, AuditEntry, ApiToken and Invitation now belong to the teams app (teams 0001 took them over in
state, jobs 0010 repointed jobs' foreign keys). State only: webapp forgets them, nothing is dropped; teams 0002
then renames their tables."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("webapp", "0003_teams_tokens_invitations"),
        ("teams", "0001_initial"),
        ("jobs", "0010_team_models_in_teams"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="Invitation"),
                migrations.DeleteModel(name="ApiToken"),
                migrations.DeleteModel(name="AuditEntry"),
                migrations.DeleteModel(name="Membership"),
                migrations.DeleteModel(name="Team"),
            ]
        ),
    ]
