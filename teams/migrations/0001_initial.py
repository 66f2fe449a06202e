"""The teams app takes over Team, Membership, AuditEntry, ApiToken and Invitation, which webapp owned, keeping rows.

State only: the models enter this app's state on their old tables, as webapp's migrations 0001-0003 left them.
jobs 0010 then repoints jobs' foreign keys in state, webapp 0004 forgets the models in its own state, and teams
0002 renames the tables to this app's names.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

ROLES = [("owner", "Owner"), ("admin", "Admin"), ("member", "Member"), ("viewer", "Viewer")]


# The models as webapp's migrations 0001-0003 left them, on webapp's tables.
STATE = [
    migrations.CreateModel(
        name="Team",
        fields=[
            ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
            ("name", models.CharField(max_length=100, unique=True)),
            ("created_at", models.DateTimeField(auto_now_add=True)),
            ("max_concurrent_jobs", models.PositiveIntegerField(blank=True, null=True)),
            ("compute_hours_per_month", models.FloatField(blank=True, null=True)),
            ("max_storage_bytes", models.BigIntegerField(blank=True, null=True)),
        ],
        options={"db_table": "webapp_team"},
    ),
    migrations.CreateModel(
        name="Membership",
        fields=[
            ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
            ("role", models.CharField(choices=ROLES, default="member", max_length=10)),
            ("created_at", models.DateTimeField(auto_now_add=True)),
            ("selected_at", models.DateTimeField(blank=True, null=True)),
            (
                "team",
                models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE, related_name="memberships", to="teams.team"
                ),
            ),
            (
                "user",
                models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE, related_name="memberships", to=settings.AUTH_USER_MODEL
                ),
            ),
        ],
        options={
            "db_table": "webapp_membership",
            "constraints": [models.UniqueConstraint(fields=("team", "user"), name="unique_team_member")],
        },
    ),
    migrations.CreateModel(
        name="AuditEntry",
        fields=[
            ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
            ("action", models.CharField(max_length=40)),
            ("target", models.CharField(blank=True, max_length=100)),
            ("detail", models.JSONField(blank=True, default=dict)),
            ("created_at", models.DateTimeField(auto_now_add=True)),
            (
                "team",
                models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE, related_name="audit_entries", to="teams.team"
                ),
            ),
            (
                "user",
                models.ForeignKey(
                    blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, to=settings.AUTH_USER_MODEL
                ),
            ),
        ],
        options={
            "db_table": "webapp_auditentry",
            "ordering": ["-created_at", "-pk"],
            "indexes": [models.Index(fields=["team", "-created_at"], name="webapp_audi_team_id_ed1f59_idx")],
        },
    ),
    migrations.CreateModel(
        name="ApiToken",
        fields=[
            ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
            ("name", models.CharField(blank=True, max_length=100)),
            ("key_hash", models.CharField(max_length=64, unique=True)),
            ("hint", models.CharField(max_length=12)),
            ("created_at", models.DateTimeField(auto_now_add=True)),
            ("last_used_at", models.DateTimeField(blank=True, null=True)),
            ("revoked_at", models.DateTimeField(blank=True, null=True)),
            (
                "team",
                models.ForeignKey(
                    null=True, on_delete=django.db.models.deletion.CASCADE, related_name="api_tokens", to="teams.team"
                ),
            ),
            (
                "user",
                models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE, related_name="api_tokens", to=settings.AUTH_USER_MODEL
                ),
            ),
        ],
        options={"db_table": "webapp_apitoken"},
    ),
    migrations.CreateModel(
        name="Invitation",
        fields=[
            ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
            ("role", models.CharField(choices=ROLES, default="member", max_length=10)),
            ("email", models.EmailField(blank=True, max_length=254)),
            ("key_hash", models.CharField(max_length=64, unique=True)),
            ("created_at", models.DateTimeField(auto_now_add=True)),
            ("expires_at", models.DateTimeField()),
            ("accepted_at", models.DateTimeField(blank=True, null=True)),
            ("revoked_at", models.DateTimeField(blank=True, null=True)),
            (
                "team",
                models.ForeignKey(
                    on_delete=django.db.models.deletion.CASCADE, related_name="invitations", to="teams.team"
                ),
            ),
            (
                "created_by",
                models.ForeignKey(
                    null=True,
                    on_delete=django.db.models.deletion.SET_NULL,
                    related_name="+",
                    to=settings.AUTH_USER_MODEL,
                ),
            ),
            (
                "accepted_by",
                models.ForeignKey(
                    blank=True,
                    null=True,
                    on_delete=django.db.models.deletion.SET_NULL,
                    related_name="+",
                    to=settings.AUTH_USER_MODEL,
                ),
            ),
        ],
        options={"db_table": "webapp_invitation", "ordering": ["-created_at", "-pk"]},
    ),
]


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("webapp", "0003_teams_tokens_invitations"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.SeparateDatabaseAndState(state_operations=STATE)]
