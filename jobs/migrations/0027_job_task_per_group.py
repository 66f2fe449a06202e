# A group column read as a task per group (peftcore/task_routing.py): recorded when the job is created.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0026_job_groups"),
    ]

    operations = [
        migrations.AddField(
            model_name="job",
            name="task_per_group",
            field=models.BooleanField(default=False),
        ),
    ]
