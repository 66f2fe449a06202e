"""Generation jobs (SFT, seq2seq) in the web app: the job page shows the generation metrics against the untrained
model and the best and worst sample generations; the playground returns the adapter's generations (the worker's
function runs in-process); the compare page and the leaderboard rank generation metrics the right way round.
A real tiny Llama SFT adapter, trained once for the module, backs the report and the playground."""

import copy
import re

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from jobs import comparison, playground, services
from jobs.models import EvalReport, Job, PlaygroundRun
from peftcore.events import ListSink
from peftcore.predict import adapter_task, load_predictor, predict
from peftcore.train import fit
from teams.actor import actor_for_user
from tests.factories import dataset_from, job_row
from tests.tiny_models import make_review_answer_file, make_tiny_llama, store_adapter

pytestmark = pytest.mark.django_db

MAX_LENGTH = 48


@pytest.fixture(scope="module")
def llama_dir():
    """The tiny random Llama where the worker finds base models (settings.MODEL_ROOT/tiny-llama)."""
    return make_tiny_llama(settings.MODEL_ROOT / "tiny-llama")


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    """96 review/answer rows: the answer ("positive" or "negative") is given away by the review's words."""
    return make_review_answer_file(tmp_path_factory.mktemp("data") / "pairs.jsonl")


@pytest.fixture(scope="module")
def trained(llama_dir, pairs_file, tmp_path_factory):
    """A real SFT adapter (full fine-tuning, a few seconds on a CPU): its folder and the done event."""
    spec = {
        "task": "sft",
        "model_path": str(llama_dir),
        "method": "full",
        "train_file": str(pairs_file),
        "text_column": "review",
        "label_column": "answer",
        "output_dir": str(tmp_path_factory.mktemp("out")),
        "params": {"epochs": 6, "batch_size": 8, "max_length": MAX_LENGTH, "learning_rate": 3e-3},
        "metadata": {"base_model": "local:tiny-llama"},
    }
    result = fit(spec, ListSink())
    return result.adapter_dir, result.done


@pytest.fixture
def llama_model(db, llama_dir):
    """The tiny Llama registered as a base model, as tests/conftest.py's tiny_model registers the tiny BERT."""
    return services.base_model_register(name="tiny random Llama", source="local:tiny-llama")


@pytest.fixture
def pairs_dataset(alice, pairs_file):
    return dataset_from(alice, pairs_file, name="pairs")


def make_job(dataset, model, *, task="sft", metrics=None, report=None, user=None):
    """A succeeded generation job made directly (not through the job form)."""
    job = job_row(
        dataset,
        model,
        status=Job.Status.SUCCEEDED,
        created_by=user,
        task=task,
        method="full",
        text_column="review",
        label_column="answer",
        params={"max_length": MAX_LENGTH},
        metrics=metrics or {},
        progress_step=1,
        progress_total=1,
    )
    if report is not None:
        EvalReport.objects.create(job=job, data=report)
    return job


@pytest.fixture
def sft_job(alice, pairs_dataset, llama_model, trained):
    """A succeeded SFT job whose report and stored adapter come from the real training run."""
    folder, done = trained
    job = make_job(pairs_dataset, llama_model, metrics=done["metrics"], report=done["report"], user=alice)
    store_adapter(job, folder)
    playground.forget_loaded()
    return job


@pytest.fixture
def alice_client(alice):
    client = Client()
    client.force_login(alice)
    return client


def percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def table(html: str, table_id: str) -> str:
    match = re.search(rf'<table[^>]*id="{table_id}".*?</table>', html, re.DOTALL)
    assert match, f"no table #{table_id}"
    return match.group(0)


def test_the_job_page_shows_generation_metrics_their_gain_and_the_best_and_worst_samples(
    alice_client, sft_job, trained
):
    report = trained[1]["report"]
    metrics, baseline, samples = report["metrics"], report["baseline_metrics"], report["samples"]
    assert len(samples) >= 10 and metrics["rouge_l"] > baseline["rouge_l"]  # the adapter learned something
    html = alice_client.get(f"/jobs/{sft_job.pk}/").content.decode()

    scores = table(html, "generation-metrics")
    rouge = re.search(r'<tr data-metric="rouge_l">.*?</tr>', scores, re.DOTALL).group(0)
    assert percent(metrics["rouge_l"]) in rouge and percent(baseline["rouge_l"]) in rouge and "▲ better" in rouge
    bleu = re.search(r'<tr data-metric="bleu">.*?</tr>', scores, re.DOTALL).group(0)
    assert f"{metrics['bleu']:.1f}" in bleu and f"{baseline['bleu']:.1f}" in bleu
    exact = re.search(r'<tr data-metric="exact_match">.*?</tr>', scores, re.DOTALL).group(0)
    assert percent(metrics["exact_match"]) in exact and percent(baseline["exact_match"]) in exact
    perplexity = re.search(r'<tr data-metric="perplexity">.*?</tr>', scores, re.DOTALL).group(0)
    assert metrics["perplexity"] < baseline["perplexity"] and "▲ better (lower)" in perplexity
    assert re.search(r'<tr data-metric="eval_loss">.*?</tr>', scores, re.DOTALL)

    best, worst = table(html, "samples-best"), table(html, "samples-worst")
    assert 'id="samples"' in html and best.count("<tr>") == 1 + 5 and worst.count("<tr>") == 1 + 5
    first_best = re.search(r"<tbody><tr>(.*?)</tr>", best, re.DOTALL).group(1)
    assert f'<td class="num">{samples[0]["row"]}</td>' in first_best
    assert samples[0]["reference"] in first_best and samples[0]["generation"] in first_best
    assert percent(samples[0]["rouge_l"]) in first_best
    first_worst = re.search(r"<tbody><tr>(.*?)</tr>", worst, re.DOTALL).group(1)  # worst first
    assert f'<td class="num">{samples[-1]["row"]}</td>' in first_worst
    assert percent(samples[-1]["rouge_l"]) in first_worst
    # A classification report's parts have nothing to show for a generation job.
    assert "Confusion matrix" not in html and 'id="per-class"' not in html
    # The playground asks for prompts and generates.
    assert 'placeholder="a prompt' in html and ">Generate</button>" in html


def test_sample_text_is_escaped_and_the_page_reads_no_more_rows_for_more_samples(alice_client, sft_job):
    url = f"/jobs/{sft_job.pk}/"
    alice_client.get(url)  # warm the session
    with CaptureQueriesContext(connection) as few:
        alice_client.get(url)
    report = sft_job.report
    data = copy.deepcopy(report.data)
    data["samples"] = (data["samples"] * 4)[:32]
    data["samples"][0].update(
        input="<script>alert(1)</script>", generation="<b>bold</b> & co", baseline_generation="<i>before</i>"
    )
    report.data = data
    report.save()
    with CaptureQueriesContext(connection) as many:
        html = alice_client.get(url).content.decode()
    assert len(many) == len(few)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt; &amp; co" in html
    assert "&lt;i&gt;before&lt;/i&gt;" in html


def test_a_seq2seq_job_asks_for_an_input_and_a_short_sample_list_has_no_worst_table(
    alice_client, pairs_dataset, llama_model, trained
):
    report = copy.deepcopy(trained[1]["report"])
    report.update(task="seq2seq", samples=report["samples"][:3])
    job = make_job(pairs_dataset, llama_model, task="seq2seq", metrics=report["metrics"], report=report)
    html = alice_client.get(f"/jobs/{job.pk}/").content.decode()
    assert 'placeholder="an input' in html and 'placeholder="a prompt' not in html
    assert table(html, "samples-best").count("<tr>") == 1 + 3 and 'id="samples-worst"' not in html


def test_the_playground_api_returns_the_adapters_generations(
    alice_api, sft_job, trained, llama_dir, django_capture_on_commit_callbacks
):
    folder = trained[0]
    assert adapter_task(folder) == "sft"
    texts = ["the film was lovely and superb", "the film was dull and tedious", "<b>tags</b> stay text"]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        created = alice_api.post(
            f"/api/v1/jobs/{sft_job.pk}/playground", {"texts": texts}, content_type="application/json"
        )
    assert created.status_code == 202 and created.json()["status"] == "pending" and len(callbacks) == 1
    assert created.json()["generations"] is None and created.json()["predictions"] is None
    run_id = created.json()["id"]
    assert playground.predict(run_id) == "predicted"  # what the maintenance worker runs
    assert set(PlaygroundRun.objects.get(pk=run_id).result) == {"generations"}
    body = alice_api.get(f"/api/v1/jobs/{sft_job.pk}/playground/{run_id}").json()
    expected = predict(load_predictor(llama_dir, folder), texts, max_length=MAX_LENGTH, max_new_tokens=64)
    assert body["status"] == "done" and body["texts"] == texts and body["predictions"] is None
    assert body["generations"] == [{**g, "base_generation": None, "compare_generation": None} for g in expected]
    assert [g["generation"] for g in body["generations"][:2]] == ["positive", "negative"]


def test_the_playground_page_shows_each_prompt_with_its_generation(
    alice_client, sft_job, trained, llama_dir, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        pending = alice_client.post(
            f"/jobs/{sft_job.pk}/playground/", {"texts": "the film was lovely and superb\n\nthe film was <i>dull</i>\n"}
        )
    run = PlaygroundRun.objects.get()
    assert run.texts == ["the film was lovely and superb", "the film was <i>dull</i>"]
    assert f"/jobs/{sft_job.pk}/playground/{run.pk}/" in pending.content.decode()  # it polls
    playground.predict(run.pk)
    run.refresh_from_db()
    assert [text for text, _ in run.pairs] == run.texts and all("generation" in g for _, g in run.pairs)
    html = alice_client.get(f"/jobs/{sft_job.pk}/playground/{run.pk}/").content.decode()
    generated = table(html, "playground-generations")
    assert 'id="playground-predictions"' not in html and "<th>Prompt</th>" in generated
    assert generated.count('class="generated"') == 2 and "positive" in generated
    assert "the film was &lt;i&gt;dull&lt;/i&gt;" in generated and "<i>dull</i>" not in generated
    expected = predict(load_predictor(llama_dir, trained[0]), run.texts, max_length=MAX_LENGTH, max_new_tokens=64)
    assert [g for _, g in run.pairs] == expected


def test_generation_settings_are_checked_and_the_base_column_shown(
    alice_api, alice_client, sft_job, django_capture_on_commit_callbacks
):
    url = f"/api/v1/jobs/{sft_job.pk}/playground"
    for bad in ({"temperature": 5}, {"top_p": 0}, {"max_new_tokens": 100000}, {"temperature": "nan"}):
        refused = alice_api.post(url, {"texts": ["hi"], **bad}, content_type="application/json")
        assert refused.status_code == 400 and set(refused.json()["errors"]) == set(bad), bad
    assert not PlaygroundRun.objects.exists()
    with django_capture_on_commit_callbacks(execute=False):
        page = alice_client.post(
            f"/jobs/{sft_job.pk}/playground/",
            {
                "texts": "the film was lovely and superb",
                "temperature": "0",
                "max_new_tokens": "4",
                "compare_base": "on",
            },
        )
    assert page.status_code == 200
    run = PlaygroundRun.objects.get()
    assert run.options == {"temperature": 0.0, "max_new_tokens": 4, "compare_base": True}
    playground.predict(run.pk)
    html = alice_client.get(f"/jobs/{sft_job.pk}/playground/{run.pk}/").content.decode()
    # a fully fine-tuned model has no adapter to switch off: the base column says so
    assert "The base model's response" in html and "(not available for this method: it has no adapter" in html
    bad_page = alice_client.post(f"/jobs/{sft_job.pk}/playground/", {"texts": "hi", "top_p": "2"})
    assert bad_page.status_code == 400 and "top p must be from" in bad_page.content.decode()


GEN_A = {"eval_loss": 0.40, "perplexity": 1.49, "rouge_l": 0.62, "bleu": 41.0, "exact_match": 0.50}
GEN_B = {"eval_loss": 0.30, "perplexity": 1.35, "rouge_l": 0.55, "bleu": 45.5, "exact_match": 0.50}


def test_compare_marks_the_lower_perplexity_and_the_higher_rouge_l_best(
    alice_api, alice_client, pairs_dataset, llama_model
):
    a = make_job(
        pairs_dataset,
        llama_model,
        metrics=GEN_A,
        report={"task": "sft", "trainable_params": 10, "total_params": 100, "train_seconds": 3},
    )
    b = make_job(
        pairs_dataset,
        llama_model,
        task="seq2seq",
        metrics=GEN_B,
        report={"task": "seq2seq", "trainable_params": 10, "total_params": 100, "train_seconds": 4},
    )
    rows = {row["name"]: row for row in alice_api.get(f"/api/v1/jobs/compare?ids={a.pk},{b.pk}").json()["rows"]}
    assert rows["ROUGE-L"]["values"] == [0.62, 0.55] and rows["ROUGE-L"]["best"] == [0]
    assert rows["perplexity"]["best"] == [1] and rows["eval loss"]["best"] == [1] and rows["BLEU"]["best"] == [1]
    assert rows["exact match"]["best"] == [] and not rows["exact match"]["differs"]  # a tie has no winner
    assert "accuracy" not in rows and "macro-F1" not in rows  # no compared job has them

    html = alice_client.get(f"/jobs/compare/?ids={a.pk},{b.pk}").content.decode()

    def cells(name):
        row = re.search(rf'<tr class="[^"]*" data-name="{name}">(.*?)</tr>', html, re.DOTALL).group(1)
        return re.findall(r'<td class="([^"]*)">(.*?)</td>', row, re.DOTALL)

    assert cells("ROUGE-L") == [("num best", "62.0%"), ("num", "55.0%")]
    assert cells("perplexity") == [("num", "1.49"), ("num best", "1.35")]
    assert cells("BLEU") == [("num", "41.0"), ("num best", "45.5")]
    assert cells("exact match") == [("num", "50.0%"), ("num", "50.0%")]


def test_the_leaderboard_ranks_generation_metrics_the_right_way_round(alice, pairs_dataset, llama_model):
    a = make_job(pairs_dataset, llama_model, metrics=GEN_A)
    b = make_job(pairs_dataset, llama_model, metrics=GEN_B)
    c = make_job(pairs_dataset, llama_model, metrics={**GEN_A, "perplexity": 9.0, "eval_loss": 2.2, "rouge_l": 0.1})

    def board(metric):
        return [
            job.pk
            for job in comparison.dataset_leaderboard(
                actor=actor_for_user(alice), dataset_id=pairs_dataset.pk, metric=metric
            )
        ]

    assert board("perplexity") == [b.pk, a.pk, c.pk]  # lowest first
    assert board("eval_loss") == [b.pk, a.pk, c.pk]
    assert board("rouge_l") == [a.pk, b.pk, c.pk]  # highest first
    assert board("bleu") == [b.pk, c.pk, a.pk]  # a tie: the newer job first
    assert board("accuracy") == []  # generation jobs have no accuracy
