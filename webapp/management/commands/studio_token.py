from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from teams.errors import Refused
from teams.models import Team
from teams.services import api_token_create


class Command(BaseCommand):
    help = (
        "Create a new API token for USERNAME in one of their teams and print it (it is stored hashed and shown "
        "only now)."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--team", default="", help="team name (default: the team the user works in)")
        parser.add_argument("--name", default="", help="a label to tell the token apart, e.g. 'laptop CLI'")

    def handle(self, *args, username, team, name, **options):
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist:
            raise CommandError(f"no user named '{username}'") from None
        team_obj = None
        if team:
            team_obj = Team.objects.filter(name=team).first()
            if team_obj is None:
                raise CommandError(f"no team named '{team}'")
        try:
            self.stdout.write(api_token_create(user=user, team=team_obj, name=name))
        except Refused as exc:
            raise CommandError(str(exc)) from None
