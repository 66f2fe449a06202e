"""The combine form (issue 21): a weight beside each finished LoRA job (blank leaves it out), the combination,
its density, and the rows to evaluate on. The rules live in jobs.services.job_combine; the form only reads."""

from django import forms

from jobs.models import Job
from peftcore.combine import MODES, WITH_DENSITY

COMBINATION_HELP = {
    "sum": "sum: exactly the weighted sum of the changes (the ranks add up)",
    "svd": "svd: the same sum, compressed back to the largest parent's rank",
    "linear": "linear: weighted average of the low-rank factors (one rank)",
    "ties": "ties: keeps each change's largest entries and resolves sign conflicts (one rank)",
    "dare_linear": "dare linear: drops entries at random and rescales (one rank)",
    "dare_ties": "dare ties: dare, then ties' sign election (one rank)",
    "magnitude_prune": "magnitude prune: keeps each change's largest entries (one rank)",
    "learned": "learned (X-LoRA): trains a router on the top job's rows that mixes the adapters token by token "
    "(SFT or preference; any positive weight picks a job)",
}


def weight_field_name(job: Job) -> str:
    return f"weight_{job.pk}"


class CombineForm(forms.Form):
    combination = forms.ChoiceField(
        choices=[(name, COMBINATION_HELP[name]) for name in MODES],
        initial="sum",
        help_text="How the adapters' weight changes are put together.",
    )
    density = forms.FloatField(
        required=False,
        min_value=0.01,
        max_value=1,
        label="Density",
        help_text=f"{', '.join(sorted(WITH_DENSITY))} only: the share of each change kept, e.g. 0.5.",
    )
    eval_dataset = forms.ModelChoiceField(
        queryset=None,
        required=False,
        empty_label="the held-out rows of the top picked job",
        label="Evaluate on",
        help_text="The combination and each picked job are scored on these same rows.",
    )
    name = forms.CharField(max_length=200, required=False, help_text="Optional; defaults to the recipe.")

    def __init__(self, *args, candidates: list[Job], datasets, picked: dict[int, float] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.candidates = candidates
        self.fields["eval_dataset"].queryset = datasets
        for job in candidates:
            self.fields[weight_field_name(job)] = forms.FloatField(
                required=False,
                min_value=-10,
                max_value=10,
                label=f"weight of job #{job.pk}",
                initial=(picked or {}).get(job.pk),
            )

    @property
    def rows(self) -> list[tuple[Job, forms.BoundField]]:
        return [(job, self[weight_field_name(job)]) for job in self.candidates]

    def picked(self) -> tuple[list[Job], list[float]]:
        """The jobs given a weight, in the table's order, and their weights."""
        chosen = [(job, self.cleaned_data[weight_field_name(job)]) for job in self.candidates]
        chosen = [(job, weight) for job, weight in chosen if weight is not None]
        return [job for job, _ in chosen], [weight for _, weight in chosen]
