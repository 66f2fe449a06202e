"""The queue at scale: 100,000 jobs (10,000 queued across 50 teams), and how long every page that shows the
queue, the status poll and a worker's claim take, with their query counts.

    .venv/bin/python bench/queue_scale.py [--jobs 100000] [--queued 10000] [--teams 50] [--repeat 30] [--json out.json]
        [--docs]

It builds a scratch database (QUEUE_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/queuebench, dropped
and made again), writes the jobs in bulk (most of them ended, some running, `--queued` waiting), then times each
request through Django's test client as a member of the first team (whose jobs are among the queued), twice:
after ANALYZE, and right after a mass status change (half the queued jobs cancelled and as many ended jobs
queued again, with no VACUUM or ANALYZE between: the state that made the old queue query take seconds). The
claim is a worker's job_claim_next inside a transaction that is rolled back, so every repetition claims from
the same queue. Figures are milliseconds of wall time (p50 and p95 over --repeat runs after one warm-up); the
query count is the same for every repetition. --docs writes the table into docs/benchmarks.md.
"""

import argparse
import datetime
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_docs import write_between

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("STUDIO_HOME", tempfile.mkdtemp(prefix="studio-queue-"))
os.environ["DATABASE_URL"] = os.environ.get("QUEUE_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/queuebench")
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
MARKERS = ("<!-- queue:start -->", "<!-- queue:end -->")


def _recreate_database(url: str) -> None:
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def seed(jobs: int, queued: int, teams: int) -> dict:
    """Teams, one member and one dataset each, and `jobs` jobs spread over them; returns what the timing needs."""
    from django.conf import settings
    from django.utils import timezone

    from jobs import services
    from jobs.models import BaseModel, Job
    from teams.services import api_token_create, team_create, user_create

    sample = Path(settings.STUDIO_HOME) / "sst2-20.tsv"
    lines = (REPO.parent / "shared" / "data" / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()
    sample.write_text("\n".join(lines[:21]) + "\n", encoding="utf-8")
    model = BaseModel.objects.create(name="bench model", source="local:bench-model")
    members, datasets = [], []
    for i in range(teams):
        team = team_create(name=f"Team {i:02d}")
        user = user_create(username=f"member{i:02d}", password="pw", team=team, role="admin")
        members.append(user)
        datasets.append(services.dataset_create(team=team, user=user, name="sst2", path=sample, filename="s.tsv"))
    now = timezone.now()
    ended = [Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.CANCELLED]
    rows = []
    for n in range(jobs):
        i = n % teams
        if n < queued:
            status = Job.Status.QUEUED
        elif n < queued + teams // 2:
            status = Job.Status.RUNNING  # half the teams run one job, so fair share has turns to count
        else:
            status = ended[n % 3]
        rows.append(
            Job(
                team=datasets[i].team,
                created_by=members[i],
                dataset=datasets[i],
                base_model=model,
                method="lora",
                status=status,
                priority=(n // teams) % 3 - 1,
                created_at=now - datetime.timedelta(seconds=jobs - n),
                finished_at=now if status in ended else None,
            )
        )
    Job.objects.bulk_create(rows, batch_size=5_000)
    member = members[0]
    queued_job = Job.objects.filter(team=datasets[0].team, status=Job.Status.QUEUED).order_by("-pk").first()
    return {"member": member, "token": api_token_create(user=member), "queued_job": queued_job.pk}


def mass_change(queued: int) -> None:
    """Half the queued jobs cancelled, as many ended jobs queued again: dead rows and stale statistics."""
    from jobs.models import Job

    half = queued // 2
    cancel = list(Job.objects.filter(status=Job.Status.QUEUED).order_by("pk").values_list("pk", flat=True)[:half])
    Job.objects.filter(pk__in=cancel).update(status=Job.Status.CANCELLED)
    again = list(Job.objects.filter(status=Job.Status.SUCCEEDED).order_by("-pk").values_list("pk", flat=True)[:half])
    Job.objects.filter(pk__in=again).update(status=Job.Status.QUEUED, finished_at=None)


def timed(call, repeat: int) -> dict:
    from django.db import connection

    call()  # warm-up: connection, templates, caches
    queries = []

    def count(execute, sql, params, many, context):
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):  # the test client's requests reset Django's own query log
        call()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {
        "p50_ms": statistics.median(times),
        "p95_ms": times[min(len(times) - 1, round(0.95 * (len(times) - 1)))],
        "queries": len(queries),
    }


def measure(ctx: dict, repeat: int) -> dict:
    from django.db import transaction
    from django.test import Client

    from jobs import runtime

    page = Client()
    page.force_login(ctx["member"])
    api = Client(headers={"Authorization": f"Bearer {ctx['token']}"})

    def get(client, url):
        def call():
            response = client.get(url)
            assert response.status_code == 200, (url, response.status_code)

        return call

    class Rollback(Exception):
        pass

    def claim():
        try:
            with transaction.atomic():
                assert runtime.job_claim_next(owner="bench/1") is not None
                raise Rollback
        except Rollback:
            pass

    calls = {
        "job list (/jobs/)": get(page, "/jobs/"),
        "API job list (/api/v1/jobs)": get(api, "/api/v1/jobs"),
        "team dashboard (/team/)": get(page, "/team/"),
        "status poll of a queued job": get(page, f"/jobs/{ctx['queued_job']}/status/"),
        "claim (job_claim_next)": claim,
    }
    return {name: timed(call, repeat) for name, call in calls.items()}


def table(result: dict) -> str:
    lines = [
        f"Run {result['date']}, `bench/queue_scale.py --jobs {result['jobs']} --queued {result['queued']} --teams "
        f"{result['teams']} --repeat {result['repeat']}`; milliseconds of wall time, p50 / p95, and queries per "
        "request:",
        "",
        "| request | after ANALYZE | right after a mass status change | queries |",
        "|---|---|---|---|",
    ]
    for name, quiet in result["analysed"].items():
        busy = result["after_change"][name]
        lines.append(
            f"| {name} | {quiet['p50_ms']:.1f} / {quiet['p95_ms']:.1f} | {busy['p50_ms']:.1f} / "
            f"{busy['p95_ms']:.1f} | {quiet['queries']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--queued", type=int, default=10_000)
    parser.add_argument("--teams", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--docs", action="store_true")
    args = parser.parse_args()
    _recreate_database(os.environ["DATABASE_URL"])

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import setup_test_environment

    setup_test_environment()
    call_command("migrate", verbosity=0)
    started = time.monotonic()
    ctx = seed(args.jobs, args.queued, args.teams)
    print(f"seeded {args.jobs:,} jobs in {time.monotonic() - started:.0f} s", file=sys.stderr)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    result = {
        "date": datetime.date.today().isoformat(),
        "jobs": args.jobs,
        "queued": args.queued,
        "teams": args.teams,
        "repeat": args.repeat,
        "analysed": measure(ctx, args.repeat),
    }
    mass_change(args.queued)
    result["after_change"] = measure(ctx, args.repeat)
    text = table(result)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if args.docs:
        write_between(MARKERS, text)


if __name__ == "__main__":
    main()
