import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management.base import CommandError
from django.db import OperationalError
from django.test import Client, TransactionTestCase

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def _flush_retrying_a_deadlock(flush):
    """A transactional test ends with one TRUNCATE of every table, and the session's Celery worker writes its
    heartbeat (a row that references a job) every few seconds: the two can take their table locks in opposite
    orders, and Postgres then aborts one of them as a deadlock. When that is the TRUNCATE, the next test starts on
    the last one's rows. The worker retries its heartbeat by design; the teardown retries its flush likewise."""

    def teardown(self):
        for attempt in range(5):
            try:
                return flush(self)
            except CommandError as exc:
                if attempt == 4 or not isinstance(exc.__cause__, OperationalError):
                    raise
                time.sleep(0.5 * (attempt + 1))

    return teardown


TransactionTestCase._fixture_teardown = _flush_retrying_a_deadlock(TransactionTestCase._fixture_teardown)


@pytest.fixture
def make_member(db):
    from teams.models import Membership
    from teams.services import team_create, user_create

    def make(username: str, team_name: str, role=Membership.Role.MEMBER):
        return user_create(username=username, password="pw-" + username, team=team_create(name=team_name), role=role)

    return make


@pytest.fixture
def alice(make_member):
    return make_member("alice", "Team A")


@pytest.fixture
def bob(make_member):
    return make_member("bob", "Team B")


@pytest.fixture
def dataset(alice, sst2_sample):
    """The SST-2 sample uploaded by alice to her team as "sst2.tsv"."""
    from tests.factories import dataset_from

    return dataset_from(alice, sst2_sample)


def api_client(user) -> Client:
    from teams.services import api_token_create

    return Client(headers={"Authorization": f"Bearer {api_token_create(user=user)}"})


@pytest.fixture
def alice_api(alice):
    return api_client(alice)


@pytest.fixture
def bob_api(bob):
    return api_client(bob)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "sst2" / "dev.tsv").is_file():
        pytest.fail(f"the shared test data is missing: expected {SHARED_DATA}/sst2/dev.tsv beside the checkout")
    return SHARED_DATA


@pytest.fixture(scope="session")
def converted_gemma_root() -> Path:
    """A model root holding the real bundled Gemma 3 270M, converted by the command the workers run, in a cache
    kept between test runs (STUDIO_TEST_CACHE, default ~/.cache/peft-studio-tests): ~90 s and 1 GB, once."""
    from peftcore import gemma_bundle

    if not gemma_bundle.installed():
        pytest.skip(f"{gemma_bundle.PIP_NAME} is not installed (requirements.lock installs it)")
    cache = Path(os.environ.get("STUDIO_TEST_CACHE", Path.home() / ".cache" / "peft-studio-tests"))
    root = cache / "models"
    command = [sys.executable, "-m", "peftcore", "prepare-gemma", "--model-root", str(root)]
    out = subprocess.run(command, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return root


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    from tests.tiny_models import make_tiny_bert

    return make_tiny_bert(settings.MODEL_ROOT / "tiny-bert")


@pytest.fixture
def tiny_model(db, tiny_model_dir):
    """The tiny BERT registered as a base model, its folder written (the worker and the token counts read it)."""
    from jobs.services import base_model_register

    return base_model_register(name="tiny random BERT", source="local:tiny-bert")


@pytest.fixture(scope="session")
def tiny_gemma_sft(tmp_path_factory) -> tuple[Path, Path]:
    """(review/answer pairs, a LoRA SFT adapter trained on them) for a tiny Gemma 3 written under MODEL_ROOT."""
    from tests.tiny_models import make_review_answer_file, make_tiny_gemma3, train_tiny_lora_sft

    folder = make_tiny_gemma3(settings.MODEL_ROOT / "tiny-gemma3")
    pairs = make_review_answer_file(tmp_path_factory.mktemp("data") / "pairs.jsonl")
    return pairs, train_tiny_lora_sft(folder, pairs, tmp_path_factory.mktemp("out"), epochs=1, batch_size=16)


@pytest.fixture
def sft_job(alice, tiny_gemma_sft):
    """alice's succeeded LoRA SFT job on the tiny Gemma 3, its adapter stored."""
    from jobs.models import Job
    from jobs.services import base_model_register
    from tests.factories import dataset_from, job_row
    from tests.tiny_models import store_adapter

    pairs, adapter = tiny_gemma_sft
    model = base_model_register(name="tiny Gemma 3", source="local:tiny-gemma3")
    dataset = dataset_from(alice, pairs, name="pairs")
    job = job_row(dataset, model, status=Job.Status.SUCCEEDED, task="sft", text_column="review", label_column="answer")
    store_adapter(job, adapter)
    return job


@pytest.fixture
def sst2_sample(tmp_path) -> Path:
    """The first 200 rows of the real SST-2 training file (copied; shared data is never edited)."""
    lines = (SHARED_DATA / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()[:201]
    path = tmp_path / "sst2-sample.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _redis_purge(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, tiny_model_dir):
    """A real Celery worker process on Redis, using the test database; the same one serves every test."""
    _redis_purge(settings.CELERY_BROKER_URL)
    db = settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "STUDIO_HOME": str(settings.STUDIO_HOME),
        "PYTHONUNBUFFERED": "1",
        # It shares the test database with every other test: it must not go looking for queued jobs that are not
        # its messages' (jobs/idle_workers.py), or it takes jobs a test means to claim itself.
        "JOB_IDLE_NUDGE_SECONDS": "86400",
        "JOB_CLAIM_NEXT": "false",
    }
    log_path = settings.STUDIO_HOME / "worker.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "webapp",
                "worker",
                "-Q",
                "training,maintenance",
                "--concurrency",
                "1",
                "--loglevel",
                "INFO",
                "-n",
                f"test-{os.getpid()}@%h",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while b"ready." not in log_path.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the Celery worker did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.3)
    yield proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pass
    try:  # the pool child and any training child live in the worker's process group
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_for(predicate, *, timeout: float, interval: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# An S3-compatible server for the blob store's suite on BLOB_STORE=s3: moto's, on a local port, in this process
# (its own thread), speaking the same HTTP API boto3 speaks to AWS or MinIO.
@pytest.fixture(scope="session")
def s3_server():
    from moto.server import ThreadedMotoServer

    from tests.integration.runtime_support import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def use_s3(s3_server, settings, monkeypatch):
    """Blobs go to the test S3 server from here on (a bucket of this test's own)."""
    from jobs import object_store

    for name, value in (("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")):
        monkeypatch.setenv(name, value)
    settings.BLOB_STORE, settings.S3_ENDPOINT_URL, settings.S3_REGION = "s3", s3_server, "us-east-1"
    settings.S3_BUCKET = f"test-{uuid.uuid4().hex[:12]}"
    object_store._client.cache_clear()
    object_store._bucket_checked.cache_clear()
    yield object_store.client()
    object_store._client.cache_clear()
