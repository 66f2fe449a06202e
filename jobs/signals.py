"""A deleted blob takes its object in the S3-compatible store with it, once the deletion is committed (a rolled
back delete keeps both). However the row goes (a dataset deleted, a team deleted, the sweep), this runs for it."""

import logging

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from .models import Blob

log = logging.getLogger(__name__)


@receiver(post_delete, sender=Blob)
def _delete_object(sender, instance: Blob, **kwargs) -> None:
    if not instance.key:
        return
    key = instance.key

    def delete() -> None:
        from . import object_store

        try:
            object_store.delete(key)
        except Exception:  # the store is down: the object stays, unreferenced; the row is gone either way
            log.warning("could not delete object %s from the object store", key, exc_info=True)

    transaction.on_commit(delete)
