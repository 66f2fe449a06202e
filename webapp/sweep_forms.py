"""The sweep form (issue 21, "try several"): a job's settings run again for several methods and/or values of one
or two settings. The rules live in jobs.services.sweeps; the form turns typed lists into numbers."""

from django import forms

from jobs.services.sweeps import AXES, MOST_VALUES
from peftcore.methods import all_methods

AXIS_HELP = {
    "r": ("Ranks", "e.g. 4, 8, 16 (methods without a rank ignore it)", int),
    "learning_rate": ("Learning rates", "e.g. 5e-4, 1e-3, 2e-3", float),
    "epochs": ("Epochs", "e.g. 1, 3, 5", int),
}


class ValuesField(forms.CharField):
    """A comma-separated list of numbers of one type; blank: the setting is not varied."""

    def __init__(self, kind, **kwargs):
        self.kind = kind
        super().__init__(required=False, max_length=200, **kwargs)

    def clean(self, value):
        value = super().clean(value)
        parts = [part.strip() for part in value.split(",") if part.strip()]
        if not parts:
            return None
        try:
            numbers = [self.kind(float(part)) if self.kind is int else float(part) for part in parts]
        except ValueError:
            raise forms.ValidationError("numbers separated by commas, e.g. 8, 16, 32") from None
        if self.kind is int and any(float(part) != int(float(part)) for part in parts):
            raise forms.ValidationError("whole numbers, e.g. 8, 16, 32")
        if len(numbers) > MOST_VALUES:
            raise forms.ValidationError(f"at most {MOST_VALUES} values")
        return numbers


class SweepForm(forms.Form):
    methods = forms.MultipleChoiceField(
        choices=[], widget=forms.CheckboxSelectMultiple, help_text="Each method picked runs with every value below."
    )
    budget = forms.IntegerField(
        required=False,
        min_value=1,
        label="Random search: at most this many jobs",
        help_text="Optional: instead of every combination, this many drawn at random.",
    )
    name = forms.CharField(max_length=200, required=False, help_text="Optional; defaults to 'sweep of' the job.")

    def __init__(self, *args, task: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["methods"].choices = [(m.name, m.label) for m in all_methods() if task in m.tasks]
        for name in AXES:
            label, help_text, kind = AXIS_HELP[name]
            self.fields[f"vary_{name}"] = ValuesField(kind, label=label, help_text=help_text)

    @property
    def axis_fields(self):
        return [self[f"vary_{name}"] for name in AXES]

    def grid(self) -> dict[str, list]:
        return {name: self.cleaned_data[f"vary_{name}"] for name in AXES if self.cleaned_data.get(f"vary_{name}")}
