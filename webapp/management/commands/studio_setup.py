import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from jobs.services import base_model_register_bundled
from teams.models import Membership
from teams.services import team_create, user_create


class Command(BaseCommand):
    help = "Migrate, register the bundled base model and create the demo team and user (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--no-demo", action="store_true", help="skip the demo team and user")

    def handle(self, *args, no_demo=False, **options):
        call_command("migrate", interactive=False, verbosity=0)
        model = base_model_register_bundled()
        self.stdout.write(f"Base model registered: {model.name} (id {model.pk})")
        if no_demo:
            return
        # The demo password is kept beside the database so a second start can print it again.
        password_file = settings.STUDIO_HOME / "demo_password"
        users = get_user_model().objects
        if not users.filter(username="demo").exists():
            password = secrets.token_urlsafe(9)
            user_create(
                username="demo", password=password, team=team_create(name="Demo team"), role=Membership.Role.OWNER
            )
            password_file.write_text(password)
            password_file.chmod(0o600)
        password = password_file.read_text().strip() if password_file.exists() else "(set before; not stored here)"
        self.stdout.write(self.style.SUCCESS(f"Log in as user 'demo' with password: {password}"))
