"""A large upload against the web server's memory: how much the serving process grows, and how long the request
takes, when the file is checked inside the request (the old way, and still the way for files up to
UPLOAD_CHECK_INLINE_BYTES) and when it is stored first and checked by the maintenance worker.

    .venv/bin/python bench/upload_memory.py [--megabytes 1000] [--json out.json] [--docs] [--from-json out.json]

It builds a scratch database (UPLOAD_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/uploadbench,
dropped and made again), writes a CSV of --megabytes of distinct labelled rows, starts gunicorn as the studio
does (one gthread process), and sends the file to POST /api/v1/datasets as a streamed multipart body (the client
holds 1 MiB at a time), twice: with UPLOAD_CHECK_INLINE_BYTES above the file's size (checked in the request)
and at its default (stored, then checked on a worker). The serving process's resident memory is sampled every
20 ms from /proc; "growth" is its peak during the request minus its size just before. The worker's check is then
run here, in this process, and timed the same way (its peak is this process's growth). --docs writes the table
into docs/benchmarks.md between its "upload" markers.
"""

import argparse
import datetime
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_docs import write_between

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
HOME = Path(os.environ.setdefault("STUDIO_HOME", tempfile.mkdtemp(prefix="studio-upload-")))
os.environ["DATABASE_URL"] = os.environ.get("UPLOAD_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/uploadbench")
os.environ["DJANGO_SETTINGS_MODULE"] = "webapp.settings"
os.environ.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/14")  # the check's message waits here, unread
MARKERS = ("<!-- upload:start -->", "<!-- upload:end -->")
MIB = 1024 * 1024


def _recreate_database(url: str) -> None:
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def write_csv(path: Path, megabytes: int) -> int:
    """Distinct rows (so the duplicate check keeps a digest of each) of SST-2-like length; returns the rows."""
    words = "a gripping and beautiful film that never lets its cast down so funny and sad at once".split()
    rows, target = 0, megabytes * MIB
    with open(path, "w", encoding="utf-8") as out:
        out.write("text,label\n")
        while out.tell() < target:
            lines = []
            for _ in range(10_000):
                lines.append(f"{' '.join(words[rows % 7 :])} number {rows},{rows % 2}\n")
                rows += 1
            out.write("".join(lines))
    return rows


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class PeakRss:
    """The peak resident memory of one process while the block runs, sampled every 20 ms."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()

    def __enter__(self):
        self.before = rss_bytes(self.pid)
        self.peak = self.before
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_bytes(self.pid))

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.before


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(port: int, inline_bytes: int) -> subprocess.Popen:
    env = {**os.environ, "UPLOAD_CHECK_INLINE_BYTES": str(inline_bytes), "DEBUG": "false"}
    command = [sys.executable, "-m", "gunicorn", "webapp.wsgi:application", "--bind", f"127.0.0.1:{port}"]
    command += ["--worker-class", "gthread", "--workers", "1", "--threads", "2", "--timeout", "900"]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def serving_pid(master: subprocess.Popen, port: int) -> int:
    """The gunicorn worker (the master's child) once it answers."""
    import http.client

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                children = Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()
                return int(children[0])
        except (OSError, IndexError):
            time.sleep(0.3)
    raise SystemExit("gunicorn did not answer within 60 s")


def upload(port: int, token: str, path: Path) -> tuple[int, dict]:
    """POST the file as multipart/form-data, streamed from disk in 1 MiB pieces."""
    import http.client

    boundary = "studio-bench-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="label_column"\r\n\r\nlabel\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1800)
    conn.putrequest("POST", "/api/v1/datasets")
    conn.putheader("Authorization", f"Bearer {token}")
    conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    conn.putheader("Content-Length", str(len(head) + path.stat().st_size + len(tail)))
    conn.endheaders()
    conn.send(head)
    with open(path, "rb") as fh:
        while chunk := fh.read(MIB):
            conn.send(chunk)
    conn.send(tail)
    response = conn.getresponse()
    raw = response.read()
    try:
        return response.status, json.loads(raw or b"{}")
    except ValueError:
        return response.status, {"body": raw[:2000].decode("utf-8", "replace")}


def measure(megabytes: int) -> dict:
    import django

    _recreate_database(os.environ["DATABASE_URL"])
    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from jobs.dataset_checks import check_dataset
    from jobs.models import Dataset
    from teams.services import api_token_create, team_create, user_create

    team = team_create(name="Bench team")
    token = api_token_create(user=user_create(username="bench", password="pw", team=team, role="admin"))
    path = HOME / "big.csv"
    rows = write_csv(path, megabytes)
    size = path.stat().st_size
    runs = []
    for mode, inline_bytes in (("checked in the request", size + 1), ("stored, checked on a worker", None)):
        inline = inline_bytes if inline_bytes is not None else settings.UPLOAD_CHECK_INLINE_BYTES
        port = free_port()
        master = serve(port, inline)
        try:
            pid = serving_pid(master, port)
            with PeakRss(pid) as peak:
                start = time.perf_counter()
                status, body = upload(port, token, path)
                seconds = time.perf_counter() - start
        finally:
            master.terminate()
            master.wait(30)
        if status not in (201, 202):
            raise SystemExit(f"{mode}: HTTP {status}: {str(body)[:2000]}")
        run = {"mode": mode, "status": status, "request_s": seconds, "web_growth_mb": peak.growth / MIB}
        if status == 202:
            with PeakRss(os.getpid()) as worker:
                start = time.perf_counter()
                check_dataset(body["id"])
                run["check_s"] = time.perf_counter() - start
            run["check_growth_mb"] = worker.growth / MIB
            dataset = Dataset.objects.get(pk=body["id"])
            if dataset.state != Dataset.State.READY or dataset.rows != rows:
                raise SystemExit(f"the worker's check ended {dataset.state} with {dataset.rows} rows, not {rows}")
        runs.append(run)
        print(json.dumps(run), flush=True)
    path.unlink()
    return {"date": datetime.date.today().isoformat(), "megabytes": size / MIB, "rows": rows, "runs": runs}


def table(result: dict) -> str:
    lines = [
        f"{result['megabytes']:,.0f} MiB CSV, {result['rows']:,} rows, {result['date']}, `bench/upload_memory.py`:",
        "",
        "| upload | HTTP | request | web process growth | worker check | worker growth |",
        "|---|---|---|---|---|---|",
    ]
    for run in result["runs"]:
        check = f"{run['check_s']:.0f} s" if "check_s" in run else "—"
        growth = f"{run['check_growth_mb']:.0f} MiB" if "check_growth_mb" in run else "—"
        lines.append(
            f"| {run['mode']} | {run['status']} | {run['request_s']:.0f} s | {run['web_growth_mb']:.0f} MiB "
            f"| {check} | {growth} |"
        )
    inline, stored = result["runs"]
    lines += [
        "",
        f"The web process grows by {stored['web_growth_mb']:.0f} MiB when the check is left to the worker "
        f"({stored['web_growth_mb'] / inline['web_growth_mb']:.2f} of the in-request check's; goal <= 64 MiB), and "
        f"the request takes {stored['request_s'] / inline['request_s']:.2f} of the time.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=1000)  # 1.05 GB, under the default 1 GiB upload limit
    parser.add_argument("--json", type=Path)
    parser.add_argument("--docs", action="store_true")
    parser.add_argument("--from-json", type=Path, help="write the table of an earlier run's --json instead of running")
    args = parser.parse_args()
    result = json.loads(args.from_json.read_text()) if args.from_json else measure(args.megabytes)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(table(result))
    if args.docs:
        write_between(MARKERS, table(result))


if __name__ == "__main__":
    main()
