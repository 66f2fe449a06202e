"""The embedded default, as `make studio` runs it: SQLite, the file-system broker, web and workers started by
one command, no servers. A job goes from upload to a downloaded adapter over plain HTTP."""

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
import uuid
import zipfile

from tests.conftest import REPO, wait_for


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url, token, *, data=None, content_type=None, method=None):
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {token}")
    if content_type:
        request.add_header("Content-Type", content_type)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


def _multipart(path):
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n\r\n'.encode()
        + path.read_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_make_studio_default_trains_a_job_without_any_server(tmp_path, tiny_model_dir, sst2_sample):
    home = tmp_path / "home"
    shutil.copytree(tiny_model_dir, home / "models" / "tiny-bert")
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE", "MODEL_ROOT")
    }
    env.update(STUDIO_HOME=str(home), PORT=str(port), TRAIN_THREADS="1", PYTHONUNBUFFERED="1")
    manage = [sys.executable, "manage.py"]
    log = open(tmp_path / "studio.log", "wb")
    studio = subprocess.Popen(
        [*manage, "studio"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        base = f"http://127.0.0.1:{port}"

        def up():
            try:
                return urllib.request.urlopen(base + "/healthz", timeout=2).status == 200
            except OSError:
                return False

        wait_for(up, timeout=90, what="the studio to answer")
        assert (home / "studio.sqlite3").exists()
        subprocess.run(
            [
                *manage,
                "shell",
                "-c",
                "from jobs.services import base_model_register; "
                "base_model_register(name='tiny', source='local:tiny-bert')",
            ],
            cwd=REPO,
            env=env,
            check=True,
        )
        token = subprocess.run(
            [*manage, "studio_token", "demo"], cwd=REPO, env=env, check=True, capture_output=True, text=True
        ).stdout.strip()
        models = json.loads(_request(base + "/api/v1/models", token))
        tiny = next(m["id"] for m in models if m["source"] == "local:tiny-bert")
        body, content_type = _multipart(sst2_sample)
        dataset = json.loads(_request(base + "/api/v1/datasets", token, data=body, content_type=content_type))
        spec = {
            "dataset": dataset["id"],
            "base_model": tiny,
            "method": "lora",
            "text_column": "sentence",
            "label_column": "label",
            "params": {"epochs": 1, "max_length": 32},
        }
        job = json.loads(
            _request(base + "/api/v1/jobs", token, data=json.dumps(spec).encode(), content_type="application/json")
        )

        def finished():
            state = json.loads(_request(f"{base}/api/v1/jobs/{job['id']}", token))
            return state if state["status"] not in ("queued", "running") else None

        final = wait_for(finished, timeout=240, interval=1, what="the job to finish")
        assert final["status"] == "succeeded", final
        adapter = zipfile.ZipFile(io.BytesIO(_request(base + final["adapter_url"], token)))
        assert "adapter_model.safetensors" in adapter.namelist()
    finally:
        os.kill(studio.pid, signal.SIGINT)  # as Ctrl-C: the studio stops its web server and workers
        try:
            studio.wait(timeout=60)
        finally:
            if studio.poll() is None:
                os.killpg(studio.pid, signal.SIGKILL)
            log.close()
    leftovers = subprocess.run(["pgrep", "-f", str(home)], capture_output=True, text=True).stdout.split()
    assert leftovers == [], (tmp_path / "studio.log").read_text()[-3000:]
