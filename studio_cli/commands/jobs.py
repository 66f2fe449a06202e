"""Submit a job and watch it until it ends; the exit code says how it ended."""

import sys
import time

from studio_cli import PROG
from studio_cli.client import Studio
from studio_cli.config import resolve
from studio_cli.errors import CliError
from studio_cli.progress import progress_bar, say

EXIT_CODES = {"succeeded": 0, "failed": 1, "cancelled": 2}


def _choose_model(studio: Studio) -> int:
    models = studio.get("/models")
    if len(models) == 1:
        return models[0]["id"]
    if not models:
        raise CliError("the studio has no base models yet; an admin registers one")
    names = ", ".join(f"{m['id']} ({m['name']})" for m in models[:8])
    raise CliError(
        f"choose a base model with --model ID; the studio has {len(models)}: {names}"
        + (f"; `{PROG} models` lists them all" if len(models) > 8 else "")
    )


def submit(args) -> int:
    studio = Studio(*resolve(args))
    payload = {
        "dataset": args.dataset,
        "method": args.method,
        "base_model": args.model if args.model is not None else _choose_model(studio),
        "params": dict(args.param),
        "method_params": dict(args.method_param),
    }
    payload.update(
        {
            key: value
            for key, value in (
                ("task", args.task),
                ("text_column", args.text_column),
                ("label_column", args.label_column),
                ("input_column", args.input_column),
                ("name", args.name),
                ("priority", args.priority),
                ("group_column", args.group_column),
            )
            if value is not None
        }
    )
    if args.group_shared:
        payload["group_shared"] = True
    job = studio.request("POST", "/jobs", ok=(201,), json=payload).json()
    place = f", place {job['queue_position']} in the queue" if job.get("queue_position") else ""
    print(f"job {job['id']} {job['status']}{place}")
    if args.watch:
        return follow(studio, job["id"], args)
    return 0


def combine(args) -> int:
    studio = Studio(*resolve(args))
    try:
        weights = [float(w) for w in args.weights.split(",")] if args.weights else [1.0] * len(args.jobs)
    except ValueError:
        raise CliError(f"--weights: numbers separated by commas, such as 1,-0.5 (got {args.weights!r})") from None
    payload = {"parents": args.jobs, "weights": weights, "combination": args.combination}
    payload.update(
        {
            key: value
            for key, value in (("density", args.density), ("eval_dataset", args.eval_dataset), ("name", args.name))
            if value is not None
        }
    )
    job = studio.request("POST", "/jobs/combine", ok=(201,), json=payload).json()
    print(f"job {job['id']} {job['status']}: {job['name']}")
    if args.watch:
        return follow(studio, job["id"], args)
    return 0


def watch(args) -> int:
    return follow(Studio(*resolve(args)), args.job, args)


def follow(studio: Studio, job_id: int, args) -> int:
    """Poll the job every args.interval seconds: a line when it is queued, a step bar while it runs."""
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
                    bar, said = (
                        progress_bar(args, total=progress["total"] or None, unit="step", desc=f"job {job_id}"),
                        "",
                    )
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
                line = f"job {job_id} queued" + (
                    f", place {job['queue_position']}" if job.get("queue_position") else ""
                )
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
        print(f"job {job['id']} cancelled" + (f": {error['message']}" if error.get("message") else ""), file=sys.stderr)
    return EXIT_CODES[status]
