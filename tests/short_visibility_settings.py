"""A deliberately misconfigured worker for one test: Redis redelivers unacknowledged messages after 2 seconds,
far shorter than a job runs (webapp.timing would refuse this from the environment, so it is set here, after
the check). The test shows the claim still runs the job only once."""

from tests.settings import *  # noqa: F403

CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 2}
