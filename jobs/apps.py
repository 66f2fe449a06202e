from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Datasets, models and jobs"

    def ready(self):
        from . import signals  # noqa: F401  (connects the object store's deletes)
