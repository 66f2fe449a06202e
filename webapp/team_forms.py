"""Forms for the browser's team and account writes: every value is checked for type, range, length and NUL
characters here (Django's CharField refuses NUL) before a service sees it, so a hostile value is an error
message on the page, never a server error. The services keep the rules (roles, owners, quotas)."""

from django import forms

from teams.models import Membership

ROLES = Membership.Role.choices
# Quotas beyond these are typing mistakes, not limits (and 1e300 GB would overflow the byte count).
MAX_JOBS, MAX_HOURS, MAX_GB = 100_000, 10_000_000, 10_000_000


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150)
    role = forms.ChoiceField(choices=ROLES, initial=Membership.Role.MEMBER)


class MemberChangeForm(forms.Form):
    role = forms.ChoiceField(choices=ROLES, required=False)
    remove = forms.BooleanField(required=False)

    def clean(self):
        data = super().clean()
        if not data.get("remove") and not data.get("role"):
            raise forms.ValidationError("choose a role, or remove the member")
        return data


class QuotaForm(forms.Form):
    max_concurrent_jobs = forms.IntegerField(required=False, min_value=0, max_value=MAX_JOBS)
    compute_hours_per_month = forms.FloatField(required=False, min_value=0, max_value=MAX_HOURS)
    max_storage_gb = forms.FloatField(required=False, min_value=0, max_value=MAX_GB)

    def quotas(self) -> dict:
        data = self.cleaned_data
        gb = data["max_storage_gb"]
        return {
            "max_concurrent_jobs": data["max_concurrent_jobs"],
            "compute_hours_per_month": data["compute_hours_per_month"],
            "max_storage_bytes": None if gb is None else int(gb * 1e9),
        }


class TokenForm(forms.Form):
    team = forms.IntegerField(min_value=1, error_messages={"required": "choose one of your teams for the token"})
    name = forms.CharField(max_length=100, required=False)


class WebhookForm(forms.Form):
    url = forms.CharField(max_length=500)
    events = forms.MultipleChoiceField(choices=[], required=False)  # the service says which events exist

    def __init__(self, *args, events: tuple[str, ...], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["events"].choices = [(e, e) for e in events]


class ModelAddForm(forms.Form):
    # Empty or missing values are the service's to explain, with the rest of what it checks.
    name = forms.CharField(max_length=200, required=False)
    source = forms.CharField(max_length=300, required=False)
    revision = forms.CharField(max_length=100, required=False)
    description = forms.CharField(max_length=300, required=False)


class InvitationForm(forms.Form):
    email = forms.CharField(max_length=254, required=False)  # the service checks it is an address
    role = forms.ChoiceField(choices=ROLES, initial=Membership.Role.MEMBER)


class TeamDeleteForm(forms.Form):
    confirm = forms.CharField(max_length=100)


def errors_text(form: forms.Form) -> str:
    """A form's errors as one sentence for a message next to the action: "field: what to fix; ..."."""
    parts = []
    for field, errors in form.errors.items():
        what = " ".join(errors)
        parts.append(what if field == "__all__" else f"{field.replace('_', ' ')}: {what}")
    return "; ".join(parts)
