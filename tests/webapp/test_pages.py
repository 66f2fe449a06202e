"""Browser pages rendered through Django's test client: lists, the live status partial, the job form and uploads."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.models import Dataset, Job
from peftcore.methods import all_methods
from tests.factories import dataset_from, job_for


@pytest.fixture
def make_job(alice, dataset, tiny_model):
    """make_job(status, **fields): a job of alice's, created queued, then set to that status with those fields."""

    def make(status=Job.Status.QUEUED, **fields):
        job = job_for(alice, dataset, tiny_model)
        if status != Job.Status.QUEUED:
            Job.objects.filter(pk=job.pk).update(status=status, started_at=timezone.now(), **fields)
        return Job.objects.get(pk=job.pk)

    return make


FINAL_FIELDS = {
    Job.Status.SUCCEEDED: {"metrics": {"accuracy": 0.8, "macro_f1": 0.79}, "progress_step": 10, "progress_total": 10},
    Job.Status.FAILED: {"error_kind": Job.ErrorKind.OUT_OF_MEMORY, "error_message": "ran out of memory at step 7"},
    Job.Status.CANCELLED: {"error_kind": Job.ErrorKind.CANCELLED, "error_message": "cancelled by alice"},
}


def make_in_status(make_job, status):
    fields = {"progress_step": 3, "progress_total": 10, "last_loss": 0.5} if status == Job.Status.RUNNING else {}
    if status in FINAL_FIELDS:
        fields = {**FINAL_FIELDS[status], "finished_at": timezone.now()}
    return make_job(status, **fields)


def selected(html: str, field_id: str) -> list[str]:
    """The values of the selected options of the <select> with this id."""
    select = re.search(rf'<select[^>]*id="{field_id}"[^>]*>(.*?)</select>', html, re.S)
    assert select, f"no <select id={field_id}>"
    return re.findall(r'<option value="([^"]*)"[^>]*\bselected\b', select.group(1))


def job_form_data(client, **query) -> dict:
    """Every field of the job form at the value the page offers (its defaults and guesses)."""
    form = client.get("/jobs/new/", query).context["form"]
    return {name: form[name].value() for name in form.fields if form[name].value() is not None}


# --- lists and job pages ---------------------------------------------------------------------------------


def test_lists_render_jobs_in_every_status(client, make_job, dataset):
    jobs = {status: make_in_status(make_job, status) for status in Job.Status}
    for url in ("/jobs/", "/datasets/"):
        assert client.get(url).status_code == 200, url
    page = client.get("/jobs/").content.decode()
    for job in jobs.values():
        assert f'href="/jobs/{job.pk}/"' in page
    assert page.count("80.0%") == 1  # the succeeded job's accuracy; the others have none
    assert dataset.name in client.get("/datasets/").content.decode()
    for status, job in jobs.items():
        response = client.get(f"/jobs/{job.pk}/")
        assert response.status_code == 200, status
    failed = client.get(f"/jobs/{jobs[Job.Status.FAILED].pk}/").content.decode()
    assert "ran out of memory at step 7" in failed
    assert "80.0%" in client.get(f"/jobs/{jobs[Job.Status.SUCCEEDED].pk}/").content.decode()


def test_job_list_query_count_does_not_grow_with_rows(client, make_job, django_assert_max_num_queries):
    for _ in range(3):
        make_job()
    with CaptureQueriesContext(connection) as few:
        assert client.get("/jobs/").status_code == 200
    for _ in range(27):
        make_job()
    with django_assert_max_num_queries(len(few.captured_queries)), CaptureQueriesContext(connection) as many:
        assert client.get("/jobs/").content.decode().count('class="status queued"') == 30
    assert len(many.captured_queries) == len(few.captured_queries)


@pytest.mark.parametrize("status", [Job.Status.QUEUED, Job.Status.RUNNING])
def test_status_partial_keeps_polling_while_the_job_is_live(client, make_job, status):
    response = client.get(f"/jobs/{make_in_status(make_job, status).pk}/status/")
    assert response.status_code == 200
    assert "hx-get" in response.content.decode()


@pytest.mark.parametrize("status", [Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.CANCELLED])
def test_status_partial_stops_polling_once_the_job_is_final(client, make_job, status):
    response = client.get(f"/jobs/{make_in_status(make_job, status).pk}/status/")
    assert response.status_code == 286
    assert "hx-get" not in response.content.decode()
    assert f'<span class="status {status}" id="job-state">' in response.content.decode()


# --- the job form ----------------------------------------------------------------------------------------


def test_job_form_guesses_the_columns_of_the_chosen_dataset(client, dataset, alice, tmp_path):
    html = client.get("/jobs/new/", {"dataset": dataset.pk}).content.decode()
    assert selected(html, "id_text_column") == ["sentence"]
    assert selected(html, "id_label_column") == ["label"]

    csv = tmp_path / "other.csv"
    csv.write_text("text,target\ngood film,1\nbad film,0\n")
    other = dataset_from(alice, csv, name="other")
    # htmx re-renders the form with the previous dataset's columns still in the query: the guess must replace them.
    html = client.get(
        "/jobs/new/", {"dataset": other.pk, "text_column": "sentence", "label_column": "label"}
    ).content.decode()
    assert selected(html, "id_text_column") == ["text"]
    assert selected(html, "id_label_column") == ["target"]


def test_job_form_shows_the_chosen_methods_parameters(client, dataset):
    ia3 = client.get("/jobs/new/", {"dataset": dataset.pk, "method": "ia3"}).content.decode()
    assert 'name="m_target_modules"' in ia3 and 'name="m_r"' not in ia3
    from peftcore.methods import get_method

    spec = get_method("ia3")
    assert spec.description in ia3 and f"Advanced: {spec.label} parameters" in ia3
    lora = client.get("/jobs/new/", {"dataset": dataset.pk, "method": "lora"}).content.decode()
    assert 'name="m_r"' in lora


def test_invalid_job_post_shows_the_error_next_to_the_field(client, dataset, tiny_model):
    data = job_form_data(client, dataset=dataset.pk, base_model=tiny_model.pk, method="lora")
    data.update(text_column="sentence", label_column="sentence")
    response = client.post("/jobs/new/", data)
    assert response.status_code == 400
    error = re.search(r'id="label_column-error">([^<]*)<', response.content.decode())
    assert error and "must differ from the text column" in error.group(1)
    # the summary at the top of the form links to the field
    summary = re.search(r'id="error-summary".*?</div>', response.content.decode(), re.S).group(0)
    assert 'href="#id_label_column"' in summary and "must differ" in summary
    assert Job.objects.count() == 0


def test_logging_out_lands_on_the_login_page_saying_so(alice):
    client = Client()
    client.force_login(alice)
    response = client.post("/logout/", follow=True)
    assert response.request["PATH_INFO"] == "/login/"
    assert "You are logged out" in response.content.decode()
    assert client.get("/jobs/").status_code == 302  # and logged out it is


def test_valid_job_post_creates_the_job_and_redirects_to_it(
    client, alice, dataset, tiny_model, django_capture_on_commit_callbacks
):
    data = job_form_data(client, dataset=dataset.pk, base_model=tiny_model.pk, method="lora")
    data.update(p_epochs=2, m_r=4)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post("/jobs/new/", data)
    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    assert len(callbacks) == 1
    assert (job.team, job.dataset, job.base_model, job.method) == (dataset.team, dataset, tiny_model, "lora")
    assert (job.text_column, job.label_column) == ("sentence", "label")
    assert job.params["epochs"] == 2 and job.method_params["r"] == 4


def test_a_finished_jobs_train_on_link_opens_the_form_stacking_on_its_adapter(
    client, make_job, tiny_model, django_capture_on_commit_callbacks
):
    first = make_in_status(make_job, Job.Status.SUCCEEDED)
    from jobs.models import Artifact, Blob

    blob = Blob.objects.create(size=1, sha256="0" * 64, complete=True)
    Artifact.objects.create(
        job=first, kind=Artifact.Kind.ADAPTER, filename="a.zip", blob=blob, size_bytes=1, sha256="0" * 64
    )
    page = client.get(f"/jobs/{first.pk}/").content.decode()
    link = re.search(r'id="train-on" href="([^"]+)"', page)
    assert link
    url = link.group(1).replace("&amp;", "&")
    form_page = client.get(url).content.decode()
    assert selected(form_page, "id_start_from") == [str(first.pk)]
    assert re.search(r'<details id="start-from" open', form_page)
    # The user switches the method to IA3 (the form re-renders with IA3's parameters) and picks "stack".
    data = job_form_data(
        client,
        dataset=first.dataset_id,
        base_model=tiny_model.pk,
        method="ia3",
        start_from=first.pk,
        text_column="sentence",
        label_column="label",
    )
    data["start_mode"] = "stack"
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post("/jobs/new/", data)
    assert response.status_code == 302, response.context["form"].errors if response.context else response
    second = Job.objects.latest("pk")
    assert (second.start_from_id, second.start_mode, second.method) == (first.pk, "stack", "ia3")
    assert 'id="started-from"' in client.get(f"/jobs/{second.pk}/").content.decode()


# --- uploads and login -----------------------------------------------------------------------------------


def test_bad_csv_upload_lists_row_errors_and_stores_nothing(client):
    bad = SimpleUploadedFile("bad.csv", b"text,label\ngood row,1\n,0\ntoo,many,fields\n")
    response = client.post("/datasets/", {"file": bad, "text_column": "text"})
    assert response.status_code == 400
    table = re.search(r'<table[^>]*id="row-errors".*?</table>', response.content.decode(), re.S)
    assert table, "no row-errors table"
    rows = {int(n) for n in re.findall(r"<tr><td>(\d+)</td>", table.group(0))}
    assert {3, 4} <= rows
    assert Dataset.objects.count() == 0


def test_login_page_renders_and_refuses_a_wrong_password(alice):
    client = Client()
    page = client.get("/login/")
    assert page.status_code == 200 and 'name="password"' in page.content.decode()
    wrong = client.post("/login/", {"username": "alice", "password": "not-her-password"})
    assert wrong.status_code == 200 and "didn't match" in wrong.content.decode()
    right = client.post("/login/", {"username": "alice", "password": "pw-alice"})
    assert right.status_code == 302 and right["Location"] == "/jobs/"


def test_status_poll_after_the_session_expired_sends_the_page_to_login(db):
    from django.test import Client

    response = Client().get("/jobs/7/status/", headers={"HX-Request": "true"})
    assert response.status_code == 286
    assert response["HX-Redirect"] == "/login/?next=/jobs/7/"


def test_methods_are_grouped_by_family_in_the_job_form(alice):
    from django.test import Client

    client = Client()
    client.force_login(alice)
    html = client.get("/jobs/new/").content.decode()
    for family in {m.family for m in all_methods()}:
        assert f'<optgroup label="{family.capitalize()}">' in html


@pytest.mark.parametrize("method", [m.name for m in all_methods() if "text-classification" in m.tasks])
def test_every_method_can_be_submitted_from_the_form_at_its_defaults(
    client, dataset, tiny_model, method, django_capture_on_commit_callbacks
):
    data = job_form_data(client, dataset=dataset.pk, base_model=tiny_model.pk, method=method)
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post("/jobs/new/", data)
    assert response.status_code == 302, response.context["form"].errors if response.context else response
    assert Job.objects.get().method == method


def test_dataset_warnings_show_on_its_page_and_in_the_job_form(client, alice, tmp_path):
    tsv = tmp_path / "dup.tsv"
    tsv.write_text("text\tlabel\ngood film\t1\nbad film\t0\ngood film\t0\n")
    dataset = dataset_from(alice, tsv, name="dup", text_column="text", label_column="label")
    for html in (
        client.get(f"/datasets/{dataset.pk}/").content.decode(),
        client.get("/jobs/new/", {"dataset": dataset.pk}).content.decode(),
    ):
        assert 'id="dataset-warnings"' in html and "row 4 repeats row 2" in html
        assert "row 4 says &#x27;0&#x27;, row 2 &#x27;1&#x27;" in html


def test_a_dataset_without_warnings_shows_none(client, dataset):
    assert 'id="dataset-warnings"' not in client.get(f"/datasets/{dataset.pk}/").content.decode()
