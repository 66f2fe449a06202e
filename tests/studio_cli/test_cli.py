"""The command-line client (studio_cli) as a user runs it: a separate process talking HTTP to a live server,
with a real API token, on real SST-2 rows; training through a real Celery worker."""

import json
import os
import re
import stat
import subprocess
import sys
import time
import zipfile

import pytest
from django.db import connection

from jobs import runtime
from jobs.models import Artifact, Dataset, Job
from jobs.storage import blob_iter_chunks
from teams.selectors import working_membership
from tests.conftest import REPO
from tests.factories import dataset_from

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="session", autouse=True)
def _close_live_server_connections(django_db_setup, django_db_blocker):
    """The live server's threads may still hold a connection when the session ends, and Postgres refuses to
    drop a database in use (as in tests/browser/conftest.py)."""
    yield
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def cli(tmp_path, live_server):
    """Run `python -m studio_cli ARGS` like a user's shell: no Django settings, its own home and config."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DJANGO_SETTINGS_MODULE", "STUDIO_URL", "STUDIO_TOKEN", "XDG_CONFIG_HOME")
    }
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), PYTHONUNBUFFERED="1")

    def run(*args, timeout=120, **extra_env) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "studio_cli", *map(str, args)],
            cwd=REPO,
            env={**env, **extra_env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    run.url = live_server.url
    run.config = home / "config" / "studio" / "config.json"
    return run


@pytest.fixture
def alice_token(alice):
    from teams.services import api_token_create

    return api_token_create(user=alice)


def _ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _refused(result: subprocess.CompletedProcess, code: int = 1) -> str:
    assert result.returncode == code, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr


def test_login_checks_the_token_and_saves_it_readable_by_the_user_alone(cli, alice_token):
    wrong = _refused(cli("login", "--url", cli.url, "--token", "not-a-token"))
    assert "HTTP 401" in wrong and "token is missing, wrong or revoked" in wrong and "login" in wrong
    assert not cli.config.exists()

    said = _ok(cli("login", "--url", cli.url + "/", "--token", alice_token))
    assert "member of team 'Team A'" in said
    assert stat.S_IMODE(cli.config.stat().st_mode) == 0o600
    assert json.loads(cli.config.read_text()) == {"url": cli.url, "token": alice_token}

    # Later commands use the saved address and token; STUDIO_TOKEN goes before the file.
    assert "no jobs yet" in _ok(cli("jobs"))
    assert "HTTP 401" in _refused(cli("jobs", STUDIO_TOKEN="revoked-or-wrong"))


def test_a_command_says_which_address_it_cannot_reach(cli, alice_token):
    err = _refused(cli("datasets", "--url", "http://127.0.0.1:9", "--token", alice_token))
    assert "cannot reach the studio at http://127.0.0.1:9" in err


def test_upload_streams_the_file_and_the_dataset_belongs_to_the_tokens_team(cli, alice, alice_token, sst2_sample):
    out = _ok(
        cli(
            "upload",
            sst2_sample,
            "--name",
            "sst2 via cli",
            "--text-column",
            "sentence",
            "--label-column",
            "label",
            "--progress",
            "--url",
            cli.url,
            "--token",
            alice_token,
        )
    )
    match = re.search(r"^dataset (\d+) 'sst2 via cli': 200 rows, tsv$", out, re.M)
    assert match, out
    assert "columns: sentence, label" in out
    dataset = Dataset.objects.get(pk=int(match.group(1)))
    assert dataset.team == working_membership(user=alice).team and dataset.rows == 200

    listing = _ok(cli("datasets", "--url", cli.url, "--token", alice_token))
    assert re.search(rf"^{dataset.pk}\s+sst2 via cli\s+200\s+tsv\s+sentence, label", listing, re.M), listing


def test_upload_of_a_malformed_file_prints_its_row_errors(cli, alice_token, sst2_sample, tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text(sst2_sample.read_text().rstrip("\n") + "\na row with\ttoo\tmany fields\nno label here\t\n")
    err = _refused(cli("upload", bad, "--label-column", "label", "--url", cli.url, "--token", alice_token))
    assert "'bad.tsv' has 2 error(s); nothing was stored" in err
    assert "row 202: expected 2 fields, found 3" in err and "row 203: the label column 'label' is empty" in err
    assert "%|" not in err  # stderr is not a terminal and --progress was not given: no bar
    assert not Dataset.objects.exists()


def test_submit_prints_each_field_error(cli, alice, alice_token, sst2_sample, tiny_model, tiny_model_dir):
    dataset = dataset_from(alice, sst2_sample, filename="train.tsv")
    base = [
        "submit",
        "--dataset",
        dataset.pk,
        "--model",
        tiny_model.pk,
        "--text-column",
        "sentence",
        "--label-column",
        "label",
        "--url",
        cli.url,
        "--token",
        alice_token,
    ]

    err = _refused(cli(*base, "--method", "no-such-method"))
    assert "the job has errors; fix the fields named (HTTP 400)" in err
    assert re.search(r"^  method: unknown method 'no-such-method'; known methods: lora, ", err, re.M), err

    err = _refused(
        cli(*base, "--method", "lora", "--param", "epochs=-1", "learning_rate=fast", "--method-param", "r=0")
    )
    lines = [line.strip().split(":")[0] for line in err.splitlines() if line.startswith("  ")]
    assert sorted(lines) == ["method_params.r", "params.epochs", "params.learning_rate"], err
    assert not Job.objects.exists()


def test_watch_follows_a_job_and_its_exit_code_says_how_it_ended(
    cli, alice, alice_token, sst2_sample, tiny_model, tiny_model_dir
):
    """No worker here: the test moves the job through the same runtime calls a worker makes."""
    dataset = dataset_from(alice, sst2_sample, filename="train.tsv")
    connect = ["--url", cli.url, "--token", alice_token]
    submit = [
        "submit",
        "--dataset",
        dataset.pk,
        "--model",
        tiny_model.pk,
        "--method",
        "lora",
        "--text-column",
        "sentence",
        "--label-column",
        "label",
        *connect,
    ]
    out = _ok(cli(*submit, "--name", "first", "--param", "epochs=1", "max_length=32", "--priority", "high"))
    first = int(re.fullmatch(r"job (\d+) queued, place 1 in the queue\n", out).group(1))
    assert Job.objects.get(pk=first).params["max_length"] == 32

    watcher = subprocess.Popen(
        [sys.executable, "-m", "studio_cli", "watch", str(first), "--interval", "0.2", "--progress", *connect],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
    )
    try:
        time.sleep(1.5)
        job = runtime.job_claim(job_id=first, owner="test-worker/1")
        assert job is not None, "something else claimed the job: is a worker running on this broker?"
        assert runtime.job_heartbeat(job=job, step=3, total=10, loss=0.6931, points=[(3, "loss", 0.6931)]) == "ok"
        time.sleep(1.5)
        runtime.job_fail(job=job, kind=Job.ErrorKind.BAD_DATA, message="row 7: the label column 'label' is empty")
        out, err = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
    assert watcher.returncode == 1, out + err
    assert f"job {first} queued, place 1" in err and f"job {first} running (attempt 1)" in err
    assert "loss=0.6931" in err and "3/10" in err  # the step bar (forced on by --progress)
    assert f"job {first} failed (bad_data): row 7: the label column 'label' is empty" in err

    second = int(re.match(r"job (\d+)", _ok(cli(*submit))).group(1))
    runtime.job_cancel(job=Job.objects.get(pk=second))
    assert f"job {second} cancelled: cancelled before it started" in _refused(cli("watch", second, *connect), 2)

    # What cannot be had says why and what to do, with exit 1.
    err = _refused(cli("download", second, *connect))
    assert f"job {second} has no adapter (status: cancelled)" in err and "HTTP 404" in err
    err = _refused(cli("watch", 999999, *connect))
    assert "HTTP 404" in err and "jobs` list what your team has" in err


def test_submit_watch_download_end_to_end_through_a_real_worker(
    celery_worker_process, cli, alice_token, sst2_sample, tiny_model, tmp_path, settings
):
    connect = ["--url", cli.url, "--token", alice_token]
    settings.UPLOAD_CHECK_INLINE_BYTES = 0  # every upload is stored first and checked by the worker
    bad = tmp_path / "bad.tsv"
    bad.write_text(sst2_sample.read_text().rstrip("\n") + "\na row with\ttoo\tmany fields\n")
    refused = cli("upload", bad, "--label-column", "label", *connect)
    assert refused.returncode != 0 and "row 202: expected 2 fields, found 3" in refused.stderr, refused.stderr
    assert "a worker is checking its rows" in refused.stderr and "it cannot be trained on" in refused.stderr
    uploaded = cli("upload", sst2_sample, "--label-column", "label", *connect)
    assert re.search(r"^dataset \d+ 'sst2-sample': 200 rows, tsv$", _ok(uploaded), re.M), uploaded.stdout
    assert "a worker is checking its rows" in uploaded.stderr
    dataset = int(re.match(r"dataset (\d+)", uploaded.stdout).group(1))
    assert Dataset.objects.get(pk=dataset).stats["labels"].keys() == {"0", "1"}
    out = _ok(
        cli(
            "submit",
            "--dataset",
            dataset,
            "--model",
            tiny_model.pk,
            "--method",
            "lora",
            "--text-column",
            "sentence",
            "--label-column",
            "label",
            "--param",
            "epochs=1",
            "batch_size=16",
            "max_length=32",
            *connect,
        )
    )
    job_id = int(re.match(r"job (\d+) queued", out).group(1))

    watched = cli("watch", job_id, "--interval", "0.5", "--progress", *connect, timeout=300)
    out = _ok(watched)
    assert f"job {job_id} succeeded" in out and re.search(r"^  accuracy: [01]\.\d{4}$", out, re.M), out
    assert "step/s" in watched.stderr or "s/step" in watched.stderr, watched.stderr

    target = tmp_path / "adapter.zip"
    out = _ok(cli("download", job_id, "-o", target, "--progress", *connect))
    artifact = Artifact.objects.select_related("blob").get(job_id=job_id, kind=Artifact.Kind.ADAPTER)
    assert target.read_bytes() == b"".join(blob_iter_chunks(artifact.blob))
    assert f"{target} ({artifact.size_bytes:,} bytes, sha256 {artifact.sha256})" in out
    assert not target.with_name("adapter.zip.part").exists()
    assert "adapter_model.safetensors" in zipfile.ZipFile(target).namelist()

    listing = _ok(cli("jobs", *connect))
    assert re.search(
        rf"^{job_id}\s+.*succeeded\s+text-classification\s+lora\s+.*accuracy [01]\.\d{{4}}", listing, re.M
    ), listing


def test_jobs_lists_one_page_or_every_page_with_the_filters(cli, alice, alice_token, sst2_sample, tiny_model):
    from tests.factories import job_row

    dataset = dataset_from(alice, sst2_sample)
    made = [job_row(dataset, tiny_model, method="ia3" if n % 2 else "lora", name=f"job {n}") for n in range(7)]
    connect = ["--url", cli.url, "--token", alice_token]

    def listed(*args) -> list[int]:
        return [job["id"] for job in json.loads(_ok(cli("jobs", "--json", *args, *connect)))]

    newest = sorted((j.pk for j in made), reverse=True)
    assert listed("--limit", "3") == newest[:3]
    assert listed("--limit", "3", "--before", newest[2]) == newest[3:6]
    assert listed("--limit", "3", "--all") == newest  # three requests, following the Link header
    assert listed("--limit", "2", "--all", "--method", "ia3") == [j.pk for j in reversed(made) if j.method == "ia3"]
    assert listed("--search", "job 4") == [made[4].pk]


def test_upload_stops_waiting_for_a_check_after_the_time_given(cli, alice_token, sst2_sample, settings):
    settings.UPLOAD_CHECK_INLINE_BYTES = 0
    err = _refused(cli("upload", sst2_sample, "--wait", "0", "--url", cli.url, "--token", alice_token))
    assert "is still being checked after 0 s" in err and "maintenance worker" in err
    assert Dataset.objects.get().state == Dataset.State.CHECKING  # stored: nothing lost


def test_combine_queues_a_combination_and_prints_each_refusal(cli, alice, alice_token, sst2_sample, tiny_model):
    from jobs.models import EvalReport
    from tests.factories import job_row

    dataset = dataset_from(alice, sst2_sample)
    a, b = (
        job_row(dataset, tiny_model, status=Job.Status.SUCCEEDED, method_params={"r": 8}, text_column="sentence")
        for _ in range(2)
    )
    for job in (a, b):
        EvalReport.objects.create(job=job, data={"labels": ["0", "1"]})
    auth = ["--url", cli.url, "--token", alice_token]

    err = _refused(cli("combine", a.pk, b.pk, "--weights", "1,x", *auth))
    assert "--weights: numbers separated by commas" in err
    err = _refused(cli("combine", a.pk, b.pk, "--combination", "ties", *auth))
    assert re.search(r"^  density: 'ties' keeps a share", err, re.M), err
    assert not Job.objects.filter(combine__isnull=False).exists()

    out = _ok(cli("combine", a.pk, b.pk, "--weights", "1,-1", *auth))
    job = Job.objects.get(combine__isnull=False)
    assert out.startswith(f"job {job.pk} queued") and job.combine["weights"] == [1.0, -1.0]


def test_sweep_starts_one_from_a_job_and_shows_its_table(cli, alice, alice_token, sst2_sample, tiny_model):
    from tests.factories import job_for

    base = job_for(alice, dataset_from(alice, sst2_sample), tiny_model, params={"epochs": 1})
    auth = ["--url", cli.url, "--token", alice_token]
    err = _refused(cli("sweep", base.pk, "--methods", "lora", "--vary", "r=4,x", *auth))
    assert "--vary r=: numbers separated by commas" in err
    err = _refused(cli("sweep", base.pk, "--methods", "lora", "--vary", "r=4,0", *auth))
    assert re.search(r"^  grid: lora r=0", err, re.M), err

    out = _ok(cli("sweep", base.pk, "--methods", "lora,ia3", "--vary", "r=4,8", *auth))
    sweep_id = int(re.match(r"sweep (\d+): 3 jobs queued", out).group(1))
    shown = _ok(cli("sweep-show", sweep_id, *auth))
    assert shown.count(" queued ") == 3 and "lora       r=4" in shown


def test_submit_with_a_group_column_is_checked_against_the_data(cli, alice, alice_token, sst2_sample, tiny_model):
    dataset = dataset_from(alice, sst2_sample)
    auth = ["--url", cli.url, "--token", alice_token]
    base = ["submit", "--dataset", dataset.pk, "--model", tiny_model.pk, "--method", "lora"]
    base += ["--text-column", "sentence", "--label-column", "label", *auth]
    err = _refused(cli(*base, "--group-column", "customer", "--group-shared"))
    assert re.search(r"^  group_column: .* has no column 'customer'", err, re.M), err
    assert not Job.objects.exists()
