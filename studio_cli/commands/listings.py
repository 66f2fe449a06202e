"""The team's datasets and jobs, the base models and the methods: a table, or the API's JSON."""

import json

from studio_cli import PROG
from studio_cli.client import Studio
from studio_cli.config import resolve


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


def datasets(args) -> int:
    return _listing(
        args,
        _pages(Studio(*resolve(args)), "/datasets", {}, every=True),  # a team has few: all of them
        ["ID", "NAME", "ROWS", "FORMAT", "COLUMNS", "WARNINGS", "CREATED"],
        lambda d: [
            d["id"],
            d["name"],
            d["rows"],
            d["format"],
            ", ".join(d["columns"]),
            len(d.get("warnings") or []),
            _when(d["created_at"]),
        ],
        f"no datasets yet; `{PROG} upload FILE` adds one",
    )


def _pages(studio: Studio, path: str, params: dict, every: bool) -> list[dict]:
    """One page of a list, or (every) all of it, following the API's Link header page by page."""
    rows, response = [], studio.request("GET", path, params=params)
    while True:
        rows += response.json()
        following = response.links.get("next", {}).get("url")
        if not every or not following:
            return rows
        response = studio.request("GET", following)


def jobs(args) -> int:
    filters = {
        "status": args.status,
        "method": args.method,
        "dataset": args.dataset,
        "member": args.member,
        "search": args.search,
        "before": args.before,
    }
    params = {"limit": args.limit, **{k: v for k, v in filters.items() if v is not None}}
    return _listing(
        args,
        _pages(Studio(*resolve(args)), "/jobs", params, args.all),
        ["ID", "NAME", "STATUS", "TASK", "METHOD", "DATASET", "MODEL", "RESULT", "CREATED"],
        lambda j: [
            j["id"],
            j["name"],
            j["status"],
            j["task"],
            j["method"],
            j["dataset"],
            j["base_model"],
            _result(j),
            _when(j["created_at"]),
        ],
        f"no jobs yet; `{PROG} submit --dataset ID --method lora` starts one",
    )


def models(args) -> int:
    return _listing(
        args,
        Studio(*resolve(args)).get("/models"),
        ["ID", "NAME", "SOURCE", "DESCRIPTION"],
        lambda m: [m["id"], m["name"], m["source"], m["description"]],
        "no base models yet; an admin registers one",
    )


def methods(args) -> int:
    return _listing(
        args,
        Studio(*resolve(args)).get("/methods"),
        ["NAME", "LABEL", "FAMILY", "TASKS"],
        lambda m: [m["name"], m["label"], m["family"], ", ".join(m.get("tasks") or [])],
        "the studio lists no methods",
    )
