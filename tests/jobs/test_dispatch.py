"""Writers publish tasks by name (jobs.dispatch); each name must be a task the worker registers, on its queue."""

from django.conf import settings

from jobs import dispatch
from webapp.celery import app

NAMES = [value for key, value in vars(dispatch).items() if key.isupper() and isinstance(value, str)]


def test_every_published_name_is_a_registered_task():
    app.loader.import_default_modules()
    assert len(NAMES) == 9
    assert sorted(set(NAMES) - set(app.tasks)) == []


def test_maintenance_tasks_are_routed_off_the_training_queue():
    routed = {name for name, route in settings.CELERY_TASK_ROUTES.items() if route["queue"] != "training"}
    assert set(NAMES) - routed == {dispatch.RUN_JOB}
