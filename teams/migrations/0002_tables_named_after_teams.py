"""The tables the teams app took over are renamed after it (webapp_team -> teams_team, ...), once no app's state
points at the old names (webapp 0004). A rename is a catalogue change in Postgres and SQLite: no row is copied,
and the foreign keys pointing at the tables (jobs', and each other's) follow them. The content types move too,
so admin log entries and permissions keep pointing at the same models."""

from django.db import migrations

MODELS = ("team", "membership", "auditentry", "apitoken", "invitation")


def _move_content_types(apps, source: str, target: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in MODELS:
        if not ContentType.objects.filter(app_label=target, model=model).exists():
            ContentType.objects.filter(app_label=source, model=model).update(app_label=target)


def content_types_to_teams(apps, schema_editor):
    _move_content_types(apps, "webapp", "teams")


def content_types_to_webapp(apps, schema_editor):
    _move_content_types(apps, "teams", "webapp")


class Migration(migrations.Migration):
    dependencies = [
        ("teams", "0001_initial"),
        ("webapp", "0004_team_models_to_teams"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        *(migrations.AlterModelTable(name=name, table=None) for name in MODELS),
        # The index was named after its old table; Django names it after the new one.
        migrations.RenameIndex(
            model_name="auditentry",
            new_name="teams_audit_team_id_25a8be_idx",
            old_name="webapp_audi_team_id_ed1f59_idx",
        ),
        migrations.RunPython(content_types_to_teams, content_types_to_webapp),
    ]
