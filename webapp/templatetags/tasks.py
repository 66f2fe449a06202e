"""Templates ask the task registry, not task names: `{% with t=job.task|task %}{% if t.generative %}`."""

from django import template

from peftcore.tasks import UnknownTaskError, get_task

register = template.Library()


@register.filter
def task(task_id: str):
    """The registered task (name, column_roles, generative, has_labels, ...), or None for an unknown id."""
    try:
        return get_task(task_id)
    except UnknownTaskError:
        return None


@register.filter
def generative(task_id: str) -> bool:
    """The task writes text: the page shows generation metrics, samples and a generating playground."""
    found = task(task_id)
    return bool(found and found.generative)
