"""SFT and seq2seq jobs through the API and the job form: per-task columns (nested paths, a messages column, the
prompt template), models that cannot do the task refused before queueing, and the SFT pre-flight (rows that
cannot be read, answers a max length would cut away) counted by the worker and blocking submission."""

import json
import shutil

import pytest
from django.conf import settings
from django.test import Client

from jobs.models import Job, TokenStats
from jobs.profiles import count_tokens as worker_count
from jobs.services import base_model_register
from jobs.workspace import build_spec
from tests.conftest import SHARED_DATA
from tests.tiny_models import make_tiny_t5
from tests.webapp.test_api import upload

pytestmark = pytest.mark.django_db


@pytest.fixture
def tiny_t5(db):
    make_tiny_t5(settings.MODEL_ROOT / "tiny-t5")
    return base_model_register(name="tiny random T5", source="local:tiny-t5")


@pytest.fixture
def seed_tasks(alice_api, tmp_path):
    """The real Self-Instruct seed tasks (a copy): outputs sit in a list of instances."""
    path = tmp_path / "seed_tasks.jsonl"
    shutil.copyfile(SHARED_DATA / "instructions" / "seed_tasks.jsonl", path)
    return upload(alice_api, path, name="seed_tasks.jsonl").json()


def _job(**fields):
    return {"method": "lora", "params": {"max_length": 512}, **fields}


def _seed_task_job(seed_tasks, model, **fields):
    """An SFT job on the seed tasks: the instruction answered by its first instance's output."""
    return _job(
        dataset=seed_tasks["id"],
        base_model=model.pk,
        task="sft",
        text_column="instruction",
        label_column="instances[0].output",
        **fields,
    )


def test_an_sft_job_on_nested_columns_is_queued_with_its_columns_and_template(
    alice_api, seed_tasks, tiny_llama, django_capture_on_commit_callbacks, tmp_path
):
    with django_capture_on_commit_callbacks(execute=False):
        created = alice_api.post(
            "/api/v1/jobs",
            _seed_task_job(seed_tasks, tiny_llama, input_column="instances[0].input", template="alpaca"),
            content_type="application/json",
        )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["task"], body["label_column"], body["input_column"], body["template"]) == (
        "sft",
        "instances[0].output",
        "instances[0].input",
        "alpaca",
    )
    spec = build_spec(Job.objects.get(pk=body["id"]), tmp_path, tmp_path)
    assert (spec["task"], spec["input_column"], spec["template"], spec["messages_column"]) == (
        "sft",
        "instances[0].input",
        "alpaca",
        None,
    )


@pytest.mark.parametrize(
    "fields, field, says",
    [
        (
            {"task": "sft", "text_column": "instruction", "label_column": "replies[0].text"},
            "label_column",
            "'replies' is not a column",
        ),
        ({"task": "sft", "text_column": "instruction"}, "label_column", "choose the response column"),
        ({"task": "sft", "messages_column": "chat"}, "messages_column", "'chat' is not a column"),
        (
            {"task": "sft", "text_column": "instruction", "label_column": "instances[0].output", "template": "vicuna"},
            "template",
            "choose auto or one of: alpaca",
        ),
        ({"task": "summarise", "text_column": "instruction", "label_column": "name"}, "task", "unknown task"),
        (  # a path longer than a job stores was a server error
            {"task": "sft", "text_column": "instruction" + ".a" * 100, "label_column": "instances[0].output"},
            "text_column",
            "it can be at most 200",
        ),
    ],
)
def test_bad_sft_columns_say_what_to_change(alice_api, seed_tasks, tiny_llama, fields, field, says):
    response = alice_api.post(
        "/api/v1/jobs",
        _job(dataset=seed_tasks["id"], base_model=tiny_llama.pk, **fields),
        content_type="application/json",
    )
    assert response.status_code == 400 and says in response.json()["errors"][field]
    assert not Job.objects.exists()


def test_a_model_that_cannot_do_the_task_is_refused_before_queueing(
    alice_api, seed_tasks, tiny_llama, tiny_t5, tiny_model, tiny_model_dir
):
    columns = {"text_column": "instruction", "label_column": "instances[0].output"}
    for model, task, says in (
        (tiny_model, "sft", "not a causal language model"),
        (tiny_t5, "sft", "choose the seq2seq task"),
        (tiny_llama, "seq2seq", "not an encoder-decoder model"),
    ):
        response = alice_api.post(
            "/api/v1/jobs",
            _job(dataset=seed_tasks["id"], base_model=model.pk, task=task, **columns),
            content_type="application/json",
        )
        assert response.status_code == 400 and says in response.json()["errors"]["base_model"], (task, response.json())
    assert not Job.objects.exists()


def test_the_sft_preflight_counts_rows_then_blocks_a_max_length_that_empties_answers(alice_api, seed_tasks, tiny_llama):
    columns = {
        "column": "instruction",
        "label_column": "instances[0].output",
        "input_column": "instances[0].input",
        "template": "alpaca",
    }
    url = (
        f"/api/v1/datasets/{seed_tasks['id']}/token-stats?base_model={tiny_llama.pk}&task=sft&max_length=64&"
        + "&".join(f"{k}={v}" for k, v in columns.items())
    )
    assert alice_api.get(url).status_code == 202
    stats = TokenStats.objects.get()
    assert stats.options["response"] == "instances[0].output" and stats.column.startswith("sft:")
    assert worker_count(stats.pk) == "counted"  # what the maintenance worker runs
    body = alice_api.get(url).json()
    assert body["status"] == "done" and body["rows"] == 175 and body["sft"]["rejected_count"] == 0
    masked = body["sft"]["masked_count"]
    assert masked > 0 and body["sft"]["needed_length"] > 64 and len(body["sft"]["masked_rows"]) == min(masked, 5)
    roomy = alice_api.get(url.replace("max_length=64", f"max_length={body['sft']['needed_length']}")).json()
    assert roomy["sft"]["masked_count"] == 0

    job = _seed_task_job(seed_tasks, tiny_llama, input_column="instances[0].input", template="alpaca")
    job["params"] = {"max_length": 64}
    refused = alice_api.post("/api/v1/jobs", job, content_type="application/json")
    assert refused.status_code == 400
    assert f"{masked} row(s)" in refused.json()["errors"]["params.max_length"]
    assert (
        f"raise the maximum length to {body['sft']['needed_length']}" in refused.json()["errors"]["params.max_length"]
    )
    job["params"] = {"max_length": body["sft"]["needed_length"]}
    assert alice_api.post("/api/v1/jobs", job, content_type="application/json").status_code == 201


def test_rows_an_sft_mapping_cannot_read_are_reported_with_their_numbers(alice_api, tiny_llama, tmp_path):
    rows = [
        {"q": "say yes", "a": {"text": "yes"}},
        {"q": "say no", "a": {"text": ""}},
        {"q": "hm", "a": {}},
        {"q": "ok", "a": {"text": "ok"}},
    ]
    data = upload(alice_api, "".join(json.dumps(r) + "\n" for r in rows).encode(), name="qa.jsonl").json()
    url = (
        f"/api/v1/datasets/{data['id']}/token-stats?base_model={tiny_llama.pk}&task=sft&column=q&"
        "label_column=a.text&max_length=64"
    )
    alice_api.get(url)
    worker_count(TokenStats.objects.get().pk)
    sft = alice_api.get(url).json()["sft"]
    assert sft["rejected_count"] == 2
    assert [r["row"] for r in sft["rejected"]] == [2, 3] and "response 'a.text' is missing" in sft["rejected"][0][
        "message"
    ]
    refused = alice_api.post(
        "/api/v1/jobs",
        _job(dataset=data["id"], base_model=tiny_llama.pk, task="sft", text_column="q", label_column="a.text"),
        content_type="application/json",
    )
    assert "2 row(s) cannot be used" in refused.json()["errors"]["label_column"]


def test_a_messages_column_job_and_a_seq2seq_job_are_accepted(
    alice_api, tiny_llama, tiny_t5, django_capture_on_commit_callbacks
):
    chat = [
        {
            "messages": [{"role": "user", "content": f"say {w}"}, {"role": "assistant", "content": w}],
            "src": f"copy {w}",
            "tgt": w,
        }
        for w in ("yes", "no", "maybe")
    ]
    data = upload(alice_api, "".join(json.dumps(r) + "\n" for r in chat).encode(), name="chat.jsonl").json()
    with django_capture_on_commit_callbacks(execute=False):
        sft = alice_api.post(
            "/api/v1/jobs",
            _job(
                dataset=data["id"], base_model=tiny_llama.pk, task="sft", messages_column="messages", text_column="src"
            ),
            content_type="application/json",
        )
        seq2seq = alice_api.post(
            "/api/v1/jobs",
            _job(dataset=data["id"], base_model=tiny_t5.pk, task="seq2seq", text_column="src", label_column="tgt"),
            content_type="application/json",
        )
    assert sft.status_code == 201 and seq2seq.status_code == 201
    # In messages mode the prompt/response columns are not used, so none is stored.
    assert (sft.json()["messages_column"], sft.json()["text_column"], sft.json()["template"]) == ("messages", "", "")
    assert (seq2seq.json()["task"], seq2seq.json()["messages_column"]) == ("seq2seq", "")


def test_the_job_form_relabels_columns_per_task_and_offers_nested_paths(alice, seed_tasks, tiny_llama):
    client = Client()
    client.force_login(alice)
    html = client.get("/jobs/new/", {"dataset": seed_tasks["id"], "task": "sft"}).content.decode()
    assert "Prompt column" in html and "Response column" in html and 'name="template"' in html
    assert '<option value="instances[0].output" selected>' in html  # guessed by the path's last part
    assert '<option value="instruction" selected>' in html
    plain = client.get("/jobs/new/", {"dataset": seed_tasks["id"]}).content.decode()
    assert "Label column" in plain and 'name="template"' not in plain and "instances[0].output" not in plain
    seq2seq = client.get("/jobs/new/", {"dataset": seed_tasks["id"], "task": "seq2seq"}).content.decode()
    assert "Target column" in seq2seq and "Input column" in seq2seq


def test_an_identifier_column_is_never_guessed_and_one_carried_over_is_guessed_again(alice, seed_tasks, tiny_llama):
    client = Client()
    client.force_login(alice)
    # classification first: no column is named like a text or a label, so the guess reads the values
    plain = client.get("/jobs/new/", {"dataset": seed_tasks["id"]}).content.decode()
    assert '<option value="id" selected>' not in plain
    assert '<option value="instruction" selected>' in plain  # the longest plain texts (not the JSON instances)
    assert '<option value="is_classification" selected>' in plain  # values that repeat
    # switching to SFT with the columns a user left on "id" (the htmx re-render carries them over)
    carried = {"dataset": seed_tasks["id"], "task": "sft", "text_column": "id", "label_column": "id"}
    sft = client.get("/jobs/new/", carried).content.decode()
    assert '<option value="id" selected>' not in sft
    assert '<option value="instruction" selected>' in sft and '<option value="instances[0].output" selected>' in sft


def test_the_form_fragment_shows_the_sft_preflight(alice, seed_tasks, tiny_llama):
    client = Client()
    client.force_login(alice)
    query = {
        "dataset": seed_tasks["id"],
        "base_model": tiny_llama.pk,
        "task": "sft",
        "text_column": "instruction",
        "label_column": "instances[0].output",
        "template": "alpaca",
        "p_max_length": 32,
    }
    assert "Counting the tokens" in client.post("/jobs/new/tokens/", query).content.decode()
    worker_count(TokenStats.objects.get().pk)
    html = client.post("/jobs/new/tokens/", query).content.decode()
    assert 'id="sft-masked"' in html and "would lose" in html and "raise it to" in html


def test_a_cpt_context_that_fills_the_models_positions_is_refused_on_the_form(alice_api, seed_tasks, tiny_llama):
    response = alice_api.post(
        "/api/v1/jobs",
        _seed_task_job(
            seed_tasks,
            tiny_llama,
            method="cpt",
            method_params={"num_virtual_tokens": 120},
            params={},
        ),
        content_type="application/json",
    )
    assert response.status_code == 400
    assert response.json()["errors"]["method_params.num_virtual_tokens"] == (
        "CPT: 120 virtual tokens leave 8 of the model's 128 positions for the rows; use at most 112 virtual tokens"
    )
    assert not Job.objects.exists()


def test_pruning_the_base_of_a_model_that_writes_is_taken_for_sft(
    alice_api, seed_tasks, tiny_llama, django_capture_on_commit_callbacks
):
    job = _seed_task_job(seed_tasks, tiny_llama, params={"max_length": 512, "prune_channels": 0.5})
    with django_capture_on_commit_callbacks(execute=False):
        response = alice_api.post("/api/v1/jobs", job, content_type="application/json")
    assert response.status_code == 201, response.json()
    assert Job.objects.get(pk=response.json()["id"]).params["prune_channels"] == 0.5


def test_pruning_the_base_of_a_writer_without_llamas_layout_is_refused_on_the_form(alice_api, seed_tasks, db):
    from tests.tiny_models import make_tiny_gpt2

    make_tiny_gpt2(settings.MODEL_ROOT / "tiny-gpt2")
    gpt2 = base_model_register(name="tiny random GPT-2", source="local:tiny-gpt2")
    job = _seed_task_job(seed_tasks, gpt2, params={"max_length": 512, "prune_channels": 0.5})
    response = alice_api.post("/api/v1/jobs", job, content_type="application/json")
    assert response.status_code == 400
    assert "gpt2 is not one: set both shares to 0" in response.json()["errors"]["params.prune_heads"]
    assert not Job.objects.exists()


def test_a_head_share_that_cuts_no_head_is_refused_on_the_form(alice_api, seed_tasks, tiny_llama):
    job = _seed_task_job(seed_tasks, tiny_llama, params={"max_length": 512, "prune_heads": 0.25})
    response = alice_api.post("/api/v1/jobs", job, content_type="application/json")
    assert response.status_code == 400
    assert "of each layer's 2 heads cuts none: use at least 0.50" in response.json()["errors"]["params.prune_heads"]
