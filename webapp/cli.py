"""`python -m webapp.cli`: the studio's REST API from a terminal, with progress bars.

    python -m webapp.cli login --url http://studio:8000 --token TOKEN
    python -m webapp.cli upload train.tsv --name sst2
    python -m webapp.cli submit --dataset 1 --method lora --param epochs=2 --watch
    python -m webapp.cli download 7 -o adapter.zip

It runs on a user's machine: it talks HTTP only (httpx) and imports neither Django settings nor torch.
Progress bars go to stderr and stay off when stderr is not a terminal, unless --progress is given.
"""

import argparse
import getpass
import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

import httpx
from tqdm import tqdm

API_PREFIX = "/api/v1"
PROG = "python -m webapp.cli"
EXIT_CODES = {"succeeded": 0, "failed": 1, "cancelled": 2}
# A large upload is checked row by row before the studio answers: wait for that, not just for the bytes.
UPLOAD_TIMEOUT = httpx.Timeout(30.0, read=900.0, write=900.0)
DEFAULT_TIMEOUT = httpx.Timeout(30.0)


class CliError(Exception):
    """An expected failure: its message is printed without a traceback and the CLI exits 1."""


# --- configuration -----------------------------------------------------------------------------------------


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME", "")
    if not os.path.isabs(base):  # the XDG spec says to ignore a relative path
        base = str(Path.home() / ".config")
    return Path(base) / "studio" / "config.json"


def config_read() -> dict:
    path = config_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {path} ({exc}); run `{PROG} login` again or delete the file") from None
    return data if isinstance(data, dict) else {}


def config_write(*, url: str, token: str) -> Path:
    """Write the URL and token readable by the user alone (0600), replacing the old file in one step."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT keeps the mode of a file that was already there
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump({"url": url, "token": token}, out)
    os.replace(temporary, path)
    return path


def normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not re.match(r"^https?://[^/]", url):
        raise CliError(f"'{url}' is not a studio address; give one such as http://127.0.0.1:8000")
    return url.removesuffix(API_PREFIX)


def resolve(args) -> tuple[str, str]:
    """URL and token: the flags, else STUDIO_URL / STUDIO_TOKEN, else the file `login` wrote."""
    saved = config_read() if not (args.url and args.token) else {}
    url = args.url or os.environ.get("STUDIO_URL") or saved.get("url")
    token = args.token or os.environ.get("STUDIO_TOKEN") or saved.get("token")
    if not url:
        raise CliError(f"no studio address: pass --url, set STUDIO_URL or run `{PROG} login --url URL --token TOKEN`")
    if not token:
        raise CliError(f"no API token: pass --token, set STUDIO_TOKEN or run `{PROG} login --url URL --token TOKEN` "
                       "(`python manage.py studio_token USERNAME` on the server prints a token)")
    return normalise_url(url), token


# --- HTTP --------------------------------------------------------------------------------------------------

HINTS = {
    401: f"the token is missing, wrong or revoked; run `{PROG} login --url URL --token TOKEN` with a valid token",
    403: "your role in the team does not allow this; ask a team admin for a role that does",
    404: f"check the id: `{PROG} datasets` and `{PROG} jobs` list what your team has",
    413: "the file is over the studio's upload limit; split it or ask the admin to raise MAX_UPLOAD_BYTES",
}


def http_error(response: httpx.Response) -> CliError:
    """The API's `detail`, its per-row or per-field errors, and what to do."""
    try:
        body = response.json()
    except ValueError:
        body = None
    status = response.status_code
    if not isinstance(body, dict):
        if status == 404:
            return CliError(f"nothing at {response.request.url} (HTTP 404); is the URL the studio's address "
                            f"(such as http://127.0.0.1:8000, without {API_PREFIX})?")
        return CliError(f"the studio answered HTTP {status} {response.reason_phrase}"
                        + ("; its log says why" if status >= 500 else ""))
    detail, lines = body.get("detail"), []
    if isinstance(detail, list):  # request validation (422): [{loc, msg}]
        lines = [f"{'.'.join(str(p) for p in item.get('loc', [])[2:]) or 'request'}: {item.get('msg')}"
                 for item in detail if isinstance(item, dict)]
        detail = "the request is not valid"
    errors = body.get("errors")
    if isinstance(errors, dict):  # a job's fields
        lines += [f"{field}: {message}" for field, message in errors.items()]
    elif isinstance(errors, list):  # a dataset's rows
        lines += [f"row {e['row']}: {e['message']}" if e.get("row") is not None else str(e.get("message"))
                  for e in errors if isinstance(e, dict)]
    message = f"{detail or response.reason_phrase} (HTTP {status})"
    if lines:
        message += "\n" + "\n".join(f"  {line}" for line in lines)
    if hint := HINTS.get(status) or ("the studio failed; its log says why" if status >= 500 else ""):
        message += f"\n{hint}"
    return CliError(message)


class Studio:
    """The API at one URL with one token; every failure becomes a CliError that says what to do."""

    def __init__(self, url: str, token: str):
        self.url = url
        self.client = httpx.Client(base_url=url + API_PREFIX, timeout=DEFAULT_TIMEOUT,
                                   headers={"Authorization": f"Bearer {token}", "User-Agent": "studio-cli"})

    def _unreachable(self, exc: Exception) -> CliError:
        if isinstance(exc, httpx.TimeoutException):
            return CliError(f"the studio at {self.url} did not answer in time ({type(exc).__name__}); try again")
        return CliError(f"cannot reach the studio at {self.url} ({exc or type(exc).__name__}); check the address "
                        "(--url, STUDIO_URL or login) and that the server runs")

    def request(self, method: str, path: str, *, ok=(200,), **kwargs) -> httpx.Response:
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if response.status_code not in ok:
            raise http_error(response)
        return response

    def get(self, path: str, **params):
        return self.request("GET", path, params=params).json()

    def stream(self, method: str, path: str):
        """A streamed response (for downloads), already checked for an error status."""
        try:
            response = self.client.send(self.client.build_request(method, path), stream=True)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from None
        if response.status_code != 200:
            response.read()
            response.close()
            raise http_error(response)
        return response


def progress_bar(args, **kwargs) -> tqdm:
    # disable=None: off when stderr is not a terminal (logs, pipes, CI), unless --progress asks for it.
    return tqdm(file=sys.stderr, disable=False if args.progress else None, dynamic_ncols=True, **kwargs)


def say(message: str) -> None:
    """A status line on stderr that does not break a progress bar being drawn."""
    tqdm.write(message, file=sys.stderr)


# --- commands ----------------------------------------------------------------------------------------------


def cmd_login(args) -> int:
    url = args.url or os.environ.get("STUDIO_URL")
    if not url:
        raise CliError("give the studio's address: login --url http://HOST:PORT --token TOKEN")
    url = normalise_url(url)
    token = args.token or os.environ.get("STUDIO_TOKEN")
    if not token and sys.stdin.isatty():
        token = getpass.getpass("API token: ").strip()
    if not token:
        raise CliError("give an API token with --token (`python manage.py studio_token USERNAME` on the server "
                       "prints one)")
    team = Studio(url, token).get("/team")  # checked before anything is written
    path = config_write(url=url, token=token)
    who = f"{team['username']}, " if team.get("username") else ""
    print(f"logged in to {url} as {who}{team['role']} of team '{team['name']}'; saved to {path}")
    return 0


class _CountingReader:
    """A binary file whose reads move a byte progress bar; httpx streams it in 64 KiB reads."""

    def __init__(self, file, bar: tqdm):
        self.file, self.bar = file, bar

    def read(self, size: int = -1) -> bytes:
        data = self.file.read(size)
        self.bar.update(len(data))
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        position = self.file.seek(offset, whence)
        self.bar.n = position
        self.bar.refresh()
        return position

    def tell(self) -> int:
        return self.file.tell()

    def fileno(self) -> int:  # lets httpx send a Content-Length from the file's size, not read it into memory
        return self.file.fileno()


def cmd_upload(args) -> int:
    path = Path(args.file)
    if not path.is_file():
        raise CliError(f"{path}: no such file")
    form = {key: value for key, value in (("name", args.name), ("text_column", args.text_column),
                                          ("label_column", args.label_column)) if value}
    studio = Studio(*resolve(args))
    with open(path, "rb") as file, progress_bar(args, total=path.stat().st_size, unit="B", unit_scale=True,
                                                unit_divisor=1024, desc=path.name) as bar:
        response = studio.request("POST", "/datasets", ok=(201,), data=form, timeout=UPLOAD_TIMEOUT,
                                  files={"file": (path.name, _CountingReader(file, bar), "application/octet-stream")})
    dataset = response.json()
    print(f"dataset {dataset['id']} '{dataset['name']}': {dataset['rows']:,} rows, {dataset['format']}")
    print(f"columns: {', '.join(dataset['columns'])}")
    for warning in dataset.get("warnings") or []:
        print(f"warning: {warning.get('message', warning)}")
    return 0


def key_value(text: str) -> tuple[str, object]:
    """KEY=VALUE, the value read as JSON when it is JSON (2, 1e-4, true, [1,2]), else kept as a string."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"'{text}' is not KEY=VALUE (such as epochs=2)")

    def refuse(constant):  # NaN and Infinity are JSON to Python, not to the API
        raise ValueError(constant)

    try:
        value = json.loads(raw, parse_constant=refuse)
    except ValueError:
        value = raw
    return key.strip(), value


def _choose_model(studio: Studio) -> int:
    models = studio.get("/models")
    if len(models) == 1:
        return models[0]["id"]
    if not models:
        raise CliError("the studio has no base models yet; an admin registers one")
    names = ", ".join(f"{m['id']} ({m['name']})" for m in models[:8])
    raise CliError(f"choose a base model with --model ID; the studio has {len(models)}: {names}"
                   + (f"; `{PROG} models` lists them all" if len(models) > 8 else ""))


def cmd_submit(args) -> int:
    studio = Studio(*resolve(args))
    payload = {"dataset": args.dataset, "method": args.method,
               "base_model": args.model if args.model is not None else _choose_model(studio),
               "params": dict(args.param), "method_params": dict(args.method_param)}
    payload.update({key: value for key, value in (("task", args.task), ("text_column", args.text_column),
                                                  ("label_column", args.label_column), ("name", args.name),
                                                  ("priority", args.priority)) if value is not None})
    job = studio.request("POST", "/jobs", ok=(201,), json=payload).json()
    place = f", place {job['queue_position']} in the queue" if job.get("queue_position") else ""
    print(f"job {job['id']} {job['status']}{place}")
    if args.watch:
        return watch(studio, job["id"], args)
    return 0


def watch(studio: Studio, job_id: int, args) -> int:
    job = studio.get(f"/jobs/{job_id}")
    bar, said, notice = None, "", ""
    try:
        while job["status"] not in EXIT_CODES:
            if job.get("notice") and job["notice"] != notice:
                notice = job["notice"]
                say(f"job {job_id}: {notice}")
            if job["status"] == "running":
                progress = job["progress"]
                if bar is None:
                    say(f"job {job_id} running (attempt {job['attempt']})")
                    bar, said = progress_bar(args, total=progress["total"] or None, unit="step",
                                             desc=f"job {job_id}"), ""
                bar.total = progress["total"] or bar.total
                bar.n = progress["step"]
                postfix = {"loss": f"{progress['loss']:.4f}"} if progress.get("loss") is not None else {}
                if progress["total"] and progress["step"] >= progress["total"]:
                    postfix["then"] = "evaluating"  # the last step is not the end: evaluation and saving follow
                bar.set_postfix(postfix, refresh=False)
                bar.refresh()
            else:  # queued, or queued again after a lost worker
                if bar is not None:
                    bar.close()
                    bar = None
                line = f"job {job_id} queued" + (f", place {job['queue_position']}" if job.get("queue_position")
                                                 else "")
                if line != said:
                    say(line)
                said = line
            time.sleep(args.interval)
            job = studio.get(f"/jobs/{job_id}")
        if bar is not None:
            bar.n = job["progress"]["step"] or bar.n
            bar.close()
            bar = None
    except KeyboardInterrupt:
        say(f"stopped watching; job {job_id} goes on (`{PROG} watch {job_id}` to watch it again)")
        return 130
    finally:
        if bar is not None:  # an error message then starts on a line of its own
            bar.close()
    return _report(job)


def _report(job: dict) -> int:
    status, error = job["status"], job.get("error") or {}
    if status == "succeeded":
        print(f"job {job['id']} succeeded in {job['run_seconds']:.0f}s")
        for name, value in sorted((job.get("metrics") or {}).items()):
            print(f"  {name}: {value:.4f}" if isinstance(value, float) else f"  {name}: {value}")
        print(f"adapter: `{PROG} download {job['id']}`")
    elif status == "failed":
        print(f"job {job['id']} failed ({error.get('kind', 'unknown')}): {error.get('message', '')}", file=sys.stderr)
    else:
        print(f"job {job['id']} cancelled" + (f": {error['message']}" if error.get("message") else ""),
              file=sys.stderr)
    return EXIT_CODES[status]


def cmd_watch(args) -> int:
    return watch(Studio(*resolve(args)), args.job, args)


def _filename(response: httpx.Response, job_id: int) -> str:
    match = re.search(r'filename="([^"/\\]+)"', response.headers.get("Content-Disposition", ""))
    return match.group(1) if match else f"job-{job_id}-adapter.zip"


def cmd_download(args) -> int:
    studio = Studio(*resolve(args))
    response = studio.stream("GET", f"/jobs/{args.job}/adapter")
    try:
        target = Path(args.output) if args.output else Path(_filename(response, args.job))
        if target.is_dir():
            target = target / _filename(response, args.job)
        partial = target.with_name(target.name + ".part")  # the target appears only once complete and checked
        digest, size = hashlib.sha256(), 0
        total = int(response.headers.get("Content-Length") or 0) or None
        try:
            with open(partial, "wb") as out, progress_bar(args, total=total, unit="B", unit_scale=True,
                                                          unit_divisor=1024, desc=target.name) as bar:
                for chunk in response.iter_raw():  # chunk by chunk: the zip is never held in memory
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
        except httpx.TransportError as exc:
            partial.unlink(missing_ok=True)
            raise CliError(f"the download from {studio.url} broke off after {size:,} bytes ({exc}); "
                           "try again") from None
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise CliError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        response.close()
    expected = response.headers.get("X-Content-SHA256")
    if (total is not None and size != total) or (expected and digest.hexdigest() != expected):
        partial.unlink(missing_ok=True)
        raise CliError(f"the download of job {args.job}'s adapter arrived damaged ({size:,} of {total or '?'} "
                       "bytes, or a checksum that does not match); try again")
    os.replace(partial, target)
    print(f"{target} ({size:,} bytes, sha256 {digest.hexdigest()})")
    return 0


# --- listings ----------------------------------------------------------------------------------------------


def table(headers: list[str], rows: list[list], width: int = 40) -> str:
    cells = [headers] + [["" if c is None else str(c) for c in row] for row in rows]
    cells = [[c if len(c) <= width else c[: width - 1] + "…" for c in row] for row in cells]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)


def _when(stamp: str | None) -> str:
    return (stamp or "")[:16].replace("T", " ")


def _listing(args, rows: list, headers: list[str], shape, empty: str) -> int:
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print(empty)
    else:
        print(table(headers, [shape(row) for row in rows]))
    return 0


def _result(job: dict) -> str:
    """What a job came to, in one cell: its headline metric, its error kind, its place or its progress."""
    metrics, status = job.get("metrics") or {}, job["status"]
    if status == "succeeded":
        for name in ("accuracy", "rouge_l", "eval_loss"):
            if isinstance(metrics.get(name), (int, float)):
                return f"{name} {metrics[name]:.4f}"
        return ""
    if status in ("failed", "cancelled"):
        return (job.get("error") or {}).get("kind", "")
    if status == "queued":
        return f"place {job['queue_position']}" if job.get("queue_position") else ""
    progress = job["progress"]
    return f"step {progress['step']}/{progress['total']}" if progress["total"] else ""


def cmd_datasets(args) -> int:
    return _listing(args, Studio(*resolve(args)).get("/datasets"),
                    ["ID", "NAME", "ROWS", "FORMAT", "COLUMNS", "WARNINGS", "CREATED"],
                    lambda d: [d["id"], d["name"], d["rows"], d["format"], ", ".join(d["columns"]),
                               len(d.get("warnings") or []), _when(d["created_at"])],
                    f"no datasets yet; `{PROG} upload FILE` adds one")


def cmd_jobs(args) -> int:
    params = {"limit": args.limit, **({"status": args.status} if args.status else {})}
    return _listing(args, Studio(*resolve(args)).get("/jobs", **params),
                    ["ID", "NAME", "STATUS", "TASK", "METHOD", "DATASET", "MODEL", "RESULT", "CREATED"],
                    lambda j: [j["id"], j["name"], j["status"], j["task"], j["method"], j["dataset"],
                               j["base_model"], _result(j), _when(j["created_at"])],
                    f"no jobs yet; `{PROG} submit --dataset ID --method lora` starts one")


def cmd_models(args) -> int:
    return _listing(args, Studio(*resolve(args)).get("/models"), ["ID", "NAME", "SOURCE", "DESCRIPTION"],
                    lambda m: [m["id"], m["name"], m["source"], m["description"]],
                    "no base models yet; an admin registers one")


def cmd_methods(args) -> int:
    return _listing(args, Studio(*resolve(args)).get("/methods"), ["NAME", "LABEL", "FAMILY", "TASKS"],
                    lambda m: [m["name"], m["label"], m["family"], ", ".join(m.get("tasks") or [])],
                    "the studio lists no methods")


# --- arguments ---------------------------------------------------------------------------------------------


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _connection_options(*, top: bool) -> argparse.ArgumentParser:
    options = argparse.ArgumentParser(add_help=False)
    unset = {} if top else {"default": argparse.SUPPRESS}
    options.add_argument("--url", **unset,
                         help="the studio's address, such as http://127.0.0.1:8000 (else STUDIO_URL, else login's)")
    options.add_argument("--token", **unset, help="an API token (else STUDIO_TOKEN, else login's)")
    options.add_argument("--progress", action="store_true", **unset,
                         help="draw progress bars even when stderr is not a terminal")
    return options


def build_parser() -> argparse.ArgumentParser:
    # The connection options work before or after the command: a command's copy defaults to SUPPRESS so that
    # it does not overwrite one given before the command.
    parser = argparse.ArgumentParser(prog=PROG, parents=[_connection_options(top=True)], description=(
        "The fine-tuning studio from a terminal: upload datasets, submit and watch jobs, download adapters."))
    shared = _connection_options(top=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[shared], help=help_text, description=help_text)
        sub.set_defaults(run=run)
        return sub

    command("login", cmd_login, "check a token against the studio and save the address and token "
                                "(~/.config/studio/config.json, readable by you alone)")

    upload = command("upload", cmd_upload, "upload a dataset (CSV, TSV, JSONL, JSON or Parquet)")
    upload.add_argument("file")
    upload.add_argument("--name", help="the dataset's name (default: the file's)")
    upload.add_argument("--text-column", help="the text column, to check now rather than at submit")
    upload.add_argument("--label-column", help="the label column, to check now rather than at submit")

    submit = command("submit", cmd_submit, "submit a training job")
    submit.add_argument("--dataset", type=int, required=True, help="dataset id (`datasets` lists them)")
    submit.add_argument("--method", required=True, help="PEFT method name (`methods` lists them)")
    submit.add_argument("--model", type=int, help="base model id (`models`); may be left out when there is one")
    submit.add_argument("--task", help="text-classification (default), sft or seq2seq")
    submit.add_argument("--text-column")
    submit.add_argument("--label-column")
    submit.add_argument("--param", type=key_value, nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="a training parameter, such as epochs=2 or learning_rate=1e-4")
    submit.add_argument("--method-param", type=key_value, nargs="+", action="extend", default=[],
                        metavar="KEY=VALUE", help="a parameter of the method, such as r=16")
    submit.add_argument("--name")
    submit.add_argument("--priority", choices=["low", "normal", "high"])
    submit.add_argument("--watch", action="store_true", help="then watch it until it ends")
    submit.add_argument("--interval", type=_positive, default=2.0, help=argparse.SUPPRESS)

    watch_cmd = command("watch", cmd_watch, "follow a job until it ends; exit 0 succeeded, 1 failed, 2 cancelled")
    watch_cmd.add_argument("job", type=int)
    watch_cmd.add_argument("--interval", type=_positive, default=2.0, help="seconds between polls (default 2)")

    download = command("download", cmd_download, "download a succeeded job's adapter (a zip)")
    download.add_argument("job", type=int)
    download.add_argument("-o", "--output", help="file or folder to write to (default: the zip's own name here)")

    for name, run, help_text in (("datasets", cmd_datasets, "list your team's datasets"),
                                 ("jobs", cmd_jobs, "list your team's jobs, newest first"),
                                 ("models", cmd_models, "list the base models"),
                                 ("methods", cmd_methods, "list the PEFT methods")):
        listing = command(name, run, help_text)
        listing.add_argument("--json", action="store_true", help="print the API's JSON instead of a table")
        if name == "jobs":
            listing.add_argument("--status", choices=sorted(EXIT_CODES) + ["queued", "running"])
            listing.add_argument("--limit", type=int, default=50)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
