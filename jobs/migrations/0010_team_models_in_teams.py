"""Jobs' foreign keys to the team point at teams.Team, which took over webapp.Team (teams 0001). State only: the
database's foreign keys reference the same table (teams 0002 renames it, and they follow)."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0009_notifications"),
        ("teams", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="basemodel",
                    name="team",
                    field=models.ForeignKey(
                        blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, to="teams.team"
                    ),
                ),
                migrations.AlterField(
                    model_name="dataset",
                    name="team",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="datasets", to="teams.team"
                    ),
                ),
                migrations.AlterField(
                    model_name="job",
                    name="team",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="jobs", to="teams.team"
                    ),
                ),
                migrations.AlterField(
                    model_name="webhook",
                    name="team",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="webhooks", to="teams.team"
                    ),
                ),
            ]
        ),
    ]
