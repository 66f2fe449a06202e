"""The "chosen because" rows of a job: each setting the studio chose, its value and why (peftcore.defaults)."""

from django import template

from peftcore.methods import UnknownMethodError, get_method
from peftcore.training_params import TRAINING_PARAMS

register = template.Library()

_TRAINING_LABELS = {p.name: p.label for p in TRAINING_PARAMS}
_OTHER_LABELS = {"pooling": "Pooling"}


@register.simple_tag
def choice_rows(job, report=None) -> list[dict]:
    """[{label, value, reason}]: the report's choices when training has written them (they include what only the
    data could tell), else those made when the job was created."""
    report = report or {}
    choices = report.get("choices") or job.choices or {}
    params = report.get("params") or job.params or {}
    method_params = report.get("method_params") or job.method_params or {}
    options = report.get("lineage") or {}
    try:
        method_labels = {p.name: p.label for p in get_method(job.method).params}
    except UnknownMethodError:
        method_labels = {}
    rows = []
    for key, reason in choices.items():
        group, _, name = key.partition(".")
        if group == "params":
            label, value = _TRAINING_LABELS.get(name, name), params.get(name)
            if name == "eval_fraction" and value is None:  # the share is chosen as a number of rows
                value = f"{report['eval_rows']:,} rows" if report.get("eval_rows") else "auto"
        elif group == "method_params":
            label, value = method_labels.get(name, name), method_params.get(name)
        else:
            label, value = _OTHER_LABELS.get(key, key), options.get(key)
        rows.append({"key": key, "label": label, "value": value, "reason": reason})
    return rows
