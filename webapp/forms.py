"""Browser forms. The job form is generated from peftcore's parameter schemas, so a new method or
training parameter appears in the form (with its default, bounds and help) without touching this file."""

from django import forms

from jobs import selectors
from jobs.services.job_tidy import METHOD_PREFIX, TRAINING_PREFIX  # defined once: presets build the same queries
from peftcore.methods import UnknownMethodError, all_methods, get_method
from peftcore.recommend import recommend
from peftcore.schema import Param
from peftcore.sft import AUTO, TEMPLATES, nested_paths
from peftcore.tasks import UnknownTaskError, all_tasks, get_task
from peftcore.training_params import TRAINING_PARAMS


def field_for_param(param: Param) -> forms.Field:
    common = {
        "label": param.label or param.name.replace("_", " ").capitalize(),
        "help_text": param.help,
        "required": not param.optional and param.type != "bool",
        "initial": param.default,
    }
    bounds = {k: v for k, v in (("min_value", param.min), ("max_value", param.max)) if v is not None}
    if param.type == "int":
        return forms.IntegerField(**common, **{k: int(v) for k, v in bounds.items()})
    if param.type == "float":
        return forms.FloatField(**common, **bounds, widget=forms.NumberInput(attrs={"step": "any"}))
    if param.type == "bool":
        return forms.BooleanField(**common)
    if param.type == "choice":
        return forms.ChoiceField(**common, choices=[(c, c) for c in param.choices])
    return forms.CharField(**common)


# Selects whose choices are sentences ("the base model: train a new adapter"): one grid column cuts them off.
WIDE_FIELDS = ("task", "eval_dataset", "start_from", "template", "group_column")


class DatasetUploadForm(forms.Form):
    file = forms.FileField(help_text="CSV, TSV, JSONL, JSON or Parquet; the first row of a CSV/TSV names the columns.")
    name = forms.CharField(required=False, max_length=200, help_text="Defaults to the file name.")
    text_column = forms.CharField(
        required=False,
        max_length=200,
        help_text="Optional: pick it from the preview after the upload, or name it now to check every row has text.",
    )
    label_column = forms.CharField(
        required=False,
        max_length=200,
        help_text="Optional: pick it from the preview after the upload, or name it now to count the labels.",
    )


class AdapterChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, job):  # the job's own columns only: no query per option
        return f"#{job.pk} {job.name} ({job.method})"


class JobForm(forms.Form):
    name = forms.CharField(required=False, max_length=200, help_text="Optional; defaults to method and dataset.")
    dataset = forms.ModelChoiceField(queryset=None, help_text="The rows to train on.")
    task = forms.ChoiceField(choices=[(task.id, task.name) for task in all_tasks()], initial="text-classification")
    # Required per task by jobs.services (SFT on a messages column needs neither).
    text_column = forms.ChoiceField(choices=[], required=False)
    label_column = forms.ChoiceField(choices=[], required=False)
    input_column = forms.ChoiceField(
        choices=[],
        required=False,
        label="Extra input column",
        help_text="Optional: a column appended to the prompt (the 'input' of Alpaca-style data).",
    )
    messages_column = forms.ChoiceField(
        choices=[],
        required=False,
        label="Or a messages column",
        help_text="Chat data: a list of {role, content} messages per row, the last one the assistant's answer. "
        "When chosen, the prompt and response columns are not used.",
    )
    template = forms.ChoiceField(
        choices=[
            (AUTO, "auto: the model's own chat format"),
            *((t, t) for t in TEMPLATES),
        ],
        required=False,
        initial=AUTO,
        label="Prompt template",
        help_text="How prompt and answer are laid out for the model; the loss falls on the answer only. Auto: the "
        "tokenizer's chat template, else the turn format its vocabulary is made for (Gemma, ChatML), else Alpaca.",
    )
    eval_dataset = forms.ModelChoiceField(
        queryset=None,
        required=False,
        empty_label="none: hold out training rows",
        help_text="Optional: a separate dataset with the same columns to measure accuracy on.",
    )
    base_model = forms.ModelChoiceField(queryset=None, empty_label=None)
    method = forms.ChoiceField(choices=[], help_text="How the model is adapted; see the description below.")
    start_from = AdapterChoiceField(
        queryset=None,
        required=False,
        empty_label="the base model: train a new adapter",
        help_text="Optional: a finished job of your team, on the same base model, whose adapter this job builds on.",
    )
    start_mode = forms.ChoiceField(
        choices=[
            ("continue", "continue training it (same method and parameters)"),
            ("stack", "keep it frozen and train a new adapter on top"),
        ],
        initial="continue",
        widget=forms.RadioSelect,
        required=False,
        label="Starting from an adapter",
    )
    group_column = forms.ChoiceField(
        choices=[],
        required=False,
        label="One adapter per value of",
        help_text="Optional: a column such as a user, customer or language; one small adapter is trained per value "
        "and scored on that group's own rows. Groups under 20 rows are listed, not trained. With Poly or multitask "
        "prompt tuning: one adapter in which each value is a task (shared skills, a routing per group).",
    )
    group_shared = forms.BooleanField(
        required=False,
        label="Start each group from a shared adapter",
        help_text="Train one adapter on all rows first; each group's starts from it, and the report shows its gain.",
    )
    priority = forms.TypedChoiceField(
        choices=[(1, "high"), (0, "normal"), (-1, "low")],
        coerce=int,
        initial=0,
        required=False,
        empty_value=0,
        help_text="Order among your team's queued jobs; teams share the workers fairly whatever this says.",
    )
    time_limit = forms.IntegerField(
        required=False,
        min_value=1,
        label="Time limit (minutes)",
        help_text="Optional: training stops (resumable, from its last checkpoint) after this long.",
    )

    def __init__(self, *args, datasets, models, adapters, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["start_from"].queryset = adapters
        self.fields["dataset"].queryset = datasets
        self.fields["eval_dataset"].queryset = datasets
        self.fields["method"].choices = method_choices()
        for name in WIDE_FIELDS:  # _field.html gives these two grid columns
            self.fields[name].wide = True
        dataset = self._chosen(datasets, "dataset")
        try:
            task_spec = get_task(self._value("task") or self.fields["task"].initial)
        except UnknownTaskError:  # the task field itself reports it
            task_spec = get_task(self.fields["task"].initial)
        self.task = task = task_spec.id
        # The models this task can use (SFT: causal language models), each saying whether it is ready.
        usable = selectors.base_models_for_task(models, task_spec)
        models = models.filter(pk__in=[m.pk for m in usable]) if usable else models
        self.fields["base_model"].queryset = models
        self.fields["base_model"].label_from_instance = _model_label
        if task_spec.input_role is not None:  # the task's own third column (preference: the rejected answer)
            self.fields["input_column"].label, self.fields["input_column"].help_text = task_spec.input_role
        # The form shows the optional fields the task reads (SFT: input, messages, template).
        self.task_fields = [self[name] for name in task_spec.fields]
        messages = "messages_column" in task_spec.fields  # it can replace the two columns, which may stay empty
        names = list(dataset.columns) if dataset else []
        if task_spec.column_paths and dataset:  # columns may be paths into nested cells (instances[0].output)
            names += nested_paths(dataset.preview or [])
        columns = [(c, c) for c in names]
        none = [("", "none")] if messages else []
        self.fields["text_column"].choices = none + columns
        self.fields["label_column"].choices = none + columns
        self.fields["input_column"].choices = ([] if task_spec.input_role else [("", "none")]) + columns
        if task_spec.input_role and self.initial.get("input_column") not in names:
            self.initial["input_column"] = _guess(names, ("rejected", "dispreferred", "worse"))
        self.fields["messages_column"].choices = [("", "none")] + columns
        self.fields["group_column"].choices = [("", "none: one adapter for all rows")] + [
            (c, c) for c in (dataset.columns if dataset else [])
        ]
        first, second = task_spec.column_roles
        self.fields["text_column"].label, self.fields["label_column"].label = first, second
        self.fields["text_column"].help_text, self.fields["label_column"].help_text = task_spec.column_help
        if dataset:
            # A value carried over from another dataset (htmx re-render) is replaced by a guess.
            # An identifier column is never a text, label, prompt or answer: one carried over is guessed again.
            taken = set()
            for field, guess in zip(("text_column", "label_column"), task_spec.column_guesses):
                if self.initial.get(field) not in names or _id_like(self.initial.get(field)):
                    self.initial[field] = _guess(names, guess) or _guess_by_content(
                        dataset.preview or [], names, taken, labels=field == "label_column" and task_spec.has_labels
                    )
                taken.add(self.initial[field])
            if messages and self.initial.get("messages_column") not in names:
                self.initial["messages_column"] = _guess(names, ("messages", "conversations", "chat")) or ""
        # From the studio's benchmark table (no torch): the first method to offer for this many rows.
        self.recommendation = recommend(task, dataset.rows) if dataset else None
        self.dataset_rows = dataset.rows if dataset else None
        self.dataset_warnings = (dataset.stats or {}).get("warnings", []) if dataset else []
        if self.recommendation and not self._value("method"):
            self.initial["method"] = self.recommendation.method
        try:
            self.method_spec = get_method(self._value("method") or all_methods()[0].name)
        except UnknownMethodError:
            self.method_spec = None  # the method field itself reports the unknown name
        model = self._chosen(models, "base_model") or models.first()
        # Counted by a worker when the model was registered (no torch here); None until then.
        self.method_count = (
            selectors.profile_count(model, self.method_spec.name) if model is not None and self.method_spec else None
        )
        for param in TRAINING_PARAMS:
            self.fields[TRAINING_PREFIX + param.name] = field_for_param(param)
        if self.method_spec:
            for param in self.method_spec.params:
                self.fields[METHOD_PREFIX + param.name] = field_for_param(param)
            self.fields[
                TRAINING_PREFIX + "learning_rate"
            ].help_text += (
                f" Blank uses {self.method_spec.label}'s recommended {self.method_spec.recommended_learning_rate:g}."
            )

    def _value(self, name):
        return (self.data.get(name) if self.is_bound else None) or self.initial.get(name)

    def _chosen(self, queryset, field: str):
        value = self._value(field)
        try:
            return queryset.filter(pk=int(getattr(value, "pk", value))).first() if value else None
        except (TypeError, ValueError):
            return None

    def training_fields(self):
        return [self[TRAINING_PREFIX + p.name] for p in TRAINING_PARAMS]

    def method_fields(self):
        return [self[METHOD_PREFIX + p.name] for p in self.method_spec.params] if self.method_spec else []

    def grouped_values(self, prefix: str) -> dict:
        return {
            name[len(prefix) :]: value
            for name, value in self.cleaned_data.items()
            if name.startswith(prefix) and value not in (None, "")
        }

    def add_service_errors(self, errors: dict) -> None:
        """Put a service's field errors next to the matching form field."""
        for key, message in errors.items():
            field = (
                key.replace("params.", TRAINING_PREFIX, 1)
                if key.startswith("params.")
                else key.replace("method_params.", METHOD_PREFIX, 1)
            )
            self.add_error(field if field in self.fields else None, message)


def method_choices() -> list:
    """Methods grouped by family (an <optgroup> each), in registry order within a family."""
    groups: dict[str, list] = {}
    for method in all_methods():
        groups.setdefault(method.family.capitalize(), []).append((method.name, method.label))
    return list(groups.items())


def _model_label(model) -> str:
    if model.state == model.State.PREPARING:
        return f"{model.name} (preparing: converted once, a few minutes after the studio starts)"
    if model.state == model.State.FAILED:
        return f"{model.name} (could not be prepared)"
    return model.name


def _id_like(column) -> bool:
    name = str(column or "").rsplit(".", 1)[-1].lower()
    return name in ("id", "uuid", "idx", "index") or name.endswith(("_id", "-id", " id"))


def _guess_by_content(preview: list, columns: list, taken: set, *, labels: bool):
    """No column is named like the role: a label is a column whose values repeat (the fewest different ones, two
    or more preferred), a text, prompt or answer the one with the longest plain-text values (not JSON lists or
    objects); identifiers and columns already chosen are never taken. Failing that, the first column that is
    neither."""
    from peftcore.sft import extract

    free = [c for c in columns if c not in taken and not _id_like(c)]
    scores = {}
    for column in free:
        values = [extract(row, column) for row in preview if isinstance(row, dict)]
        values = [str(v) for v in values if v is not None and not isinstance(v, (dict, list))]
        values = [v for v in values if not v.lstrip().startswith(("[", "{"))]
        if not values:
            continue
        distinct = len(set(values))
        if labels and distinct < len(values):
            scores[column] = (distinct >= 2, -distinct)
        elif not labels:
            scores[column] = (True, sum(map(len, values)) / len(values))
    if scores:
        return max(scores, key=scores.get)
    return free[0] if free else None


def _guess(columns, names):
    """The first column named like one of names (a nested path by its last part: instances[0].output)."""
    lowered = {c.lower(): c for c in columns}
    for column in columns:
        lowered.setdefault(column.rsplit(".", 1)[-1].lower(), column)
    return next((lowered[n] for n in names if n in lowered), None)


class JobFilterForm(forms.Form):
    """The job list's filters (GET): every field optional; `before` is the keyset cursor of the next page."""

    search = forms.CharField(required=False, max_length=200, label="Name contains")
    status = forms.ChoiceField(required=False)
    method = forms.ChoiceField(required=False)
    dataset = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    member = forms.ChoiceField(required=False)
    before = forms.IntegerField(required=False, min_value=1, widget=forms.HiddenInput)

    def __init__(self, data, *, datasets, members):
        super().__init__(data)
        from jobs.models import Job
        from peftcore.methods import all_methods

        anything = [("", "any")]
        self.fields["status"].choices = anything + list(Job.Status.choices)
        self.fields["method"].choices = anything + [(m.name, m.label) for m in all_methods()]
        self.fields["dataset"].choices = anything + [(d.pk, d.name) for d in datasets]
        self.fields["member"].choices = anything + [(name, name) for name in members]
