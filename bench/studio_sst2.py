"""LoRA on the bundled MiniLM with 2,000 SST-2 rows, evaluated on the SST-2 dev set, through the whole studio.

Starts the embedded studio (SQLite + file-system broker, its own temporary STUDIO_HOME and port), uploads
train.tsv and dev.tsv through the API, submits the job, follows it to the end and prints accuracy, wall
time and the studio's overhead: the same spec trained directly with `python -m peftcore train` in the same
run is the reference, so the ratio holds on a noisy machine.

    .venv/bin/python bench/studio_sst2.py [--rows 2000] [--json out.json]
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "sst2"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, base: str, token: str):
        self.base, self.token = base, token

    def call(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None):
        request = urllib.request.Request(self.base + path, data=body, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        if content_type:
            request.add_header("Content-Type", content_type)
        with urllib.request.urlopen(request, timeout=600) as response:
            return json.loads(response.read())

    def upload(self, path: Path, name: str) -> dict:
        boundary = uuid.uuid4().hex
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\n{name}\r\n'.encode(),
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n".encode(),
            path.read_bytes(),
            f"\r\n--{boundary}--\r\n".encode(),
        ]
        return self.call("POST", "/api/v1/datasets", b"".join(parts), f"multipart/form-data; boundary={boundary}")


def run_reference(train: Path, dev: Path, rows: int, home: Path) -> tuple[float, dict]:
    """The same training straight from peftcore's CLI: no web, worker, broker or database."""
    start = time.monotonic()
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "peftcore",
            "train",
            "--data",
            str(train),
            "--eval-data",
            str(dev),
            "--text-column",
            "sentence",
            "--label-column",
            "label",
            "--param",
            f"max_rows={rows}",
            "--out",
            str(home / "reference"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.monotonic() - start
    done = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")][-1]
    return seconds, done["metrics"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()
    train, dev = DATA / "train.tsv", DATA / "dev.tsv"
    home = Path(tempfile.mkdtemp(prefix="studio-bench-"))
    port = free_port()
    env = {**os.environ, "STUDIO_HOME": str(home), "PORT": str(port)}
    for key in ("DATABASE_URL", "CELERY_BROKER_URL", "DJANGO_SETTINGS_MODULE"):
        env.pop(key, None)  # the embedded default, as a user's first run gets it
    studio = subprocess.Popen(
        [sys.executable, "manage.py", "studio"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(120):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        token = subprocess.run(
            [sys.executable, "manage.py", "studio_token", "demo"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        api = Api(base, token)
        model = next(m for m in api.call("GET", "/api/v1/models") if m["source"].startswith("bundled/"))
        train_id = api.upload(train, "sst2-train")["id"]
        dev_id = api.upload(dev, "sst2-dev")["id"]
        spec = {
            "dataset": train_id,
            "eval_dataset": dev_id,
            "base_model": model["id"],
            "method": "lora",
            "task": "text-classification",
            "text_column": "sentence",
            "label_column": "label",
            "params": {"max_rows": args.rows},
        }
        submitted = time.monotonic()
        job = api.call("POST", "/api/v1/jobs", json.dumps(spec).encode(), "application/json")
        while job["status"] in ("queued", "running"):
            time.sleep(2)
            job = api.call("GET", f"/api/v1/jobs/{job['id']}")
            p = job["progress"]
            print(f"\r{job['status']:9} step {p['step']}/{p['total']}", end="", file=sys.stderr, flush=True)
        studio_seconds = time.monotonic() - submitted
        print(file=sys.stderr)
    finally:
        os.killpg(studio.pid, 15)
        studio.wait(timeout=30)
    if job["status"] != "succeeded":
        sys.exit(f"job ended {job['status']}: {job['error']}")
    result = {
        "rows": args.rows,
        "eval_rows": 872,
        "accuracy": job["metrics"]["accuracy"],
        "macro_f1": job["metrics"]["macro_f1"],
        "studio_seconds": round(studio_seconds, 1),
        "params": job["params"],
        "method_params": job["method_params"],
    }
    if not args.skip_reference:
        ref_seconds, ref_metrics = run_reference(train, dev, args.rows, home)
        result.update(
            reference_seconds=round(ref_seconds, 1),
            reference_accuracy=ref_metrics["accuracy"],
            studio_over_reference=round(studio_seconds / ref_seconds, 3),
        )
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
