"""Soak test of the job runtime: N jobs on W Celery workers while a random busy worker is killed (kill -9 of
the worker and its pool) every M seconds and a fresh one started in its place.

Reports jobs finished, failed, lost (not ended by the deadline), duplicated (two training processes of one
job alive at once; a second adapter cannot be stored), and the time to recover (from a kill until the killed worker's
job runs again on another worker). Needs Postgres and Redis on 127.0.0.1 like the tests; it uses a database
of its own (`soak`, recreated) and a private redis-server, and trains a tiny random BERT.

    .venv/bin/python bench/soak.py [--jobs 12] [--workers 3] [--kill-every 15] [--epochs 4] [--json out.json]
"""

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("STUDIO_HOME", tempfile.mkdtemp(prefix="studio-soak-"))
os.environ["DATABASE_URL"] = os.environ.get("SOAK_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/soak")
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"


def _recreate_database(url: str) -> None:
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--kill-every", type=float, default=15.0, help="seconds between kills")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per job (about 5 s each here)")
    parser.add_argument("--deadline", type=float, default=1800.0, help="seconds before unfinished jobs count lost")
    parser.add_argument(
        "--max-failures",
        type=int,
        default=10,
        help="JOB_MAX_FAILURES for the workers: a job killed this often fails, by design",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    _recreate_database(os.environ["DATABASE_URL"])

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from jobs import services
    from jobs.models import Job, JobAttempt
    from teams.services import team_create, user_create
    from tests.integration.runtime_support import FAST_RUNTIME, RedisServer, Worker, point_celery_at, training_pids
    from tests.tiny_models import make_tiny_bert

    rng = random.Random(args.seed)
    make_tiny_bert(settings.MODEL_ROOT / "tiny-bert")
    broker = RedisServer(Path(tempfile.mkdtemp(prefix="soak-redis-"))).start()
    point_celery_at(broker.url)
    user = user_create(username="soak", password="soak-pw", team=team_create(name="Soak"))
    team = user.memberships.get().team
    rows = (REPO.parent / "shared" / "data" / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()[:201]
    sample = Path(settings.STUDIO_HOME) / "sst2-200.tsv"
    sample.write_text("\n".join(rows) + "\n", encoding="utf-8")
    dataset = services.dataset_create(team=team, user=user, name="sst2", path=sample, filename="sst2.tsv")
    model = services.base_model_register(name="tiny BERT", source="local:tiny-bert")

    env = {"JOB_MAX_FAILURES": str(args.max_failures)}
    beat = Worker("soak-beat", broker, queues="reaper", beat=True, env=env)
    workers = [Worker(f"soak-{i}", broker, env=env) for i in range(args.workers)]
    started = time.monotonic()
    jobs = [
        services.job_create(
            team=team,
            user=user,
            dataset=dataset,
            base_model=model,
            method="lora",
            text_column="sentence",
            label_column="label",
            params={"epochs": args.epochs, "batch_size": 4, "max_length": 24},
        ).pk
        for _ in range(args.jobs)
    ]
    duplicated: set[int] = set()
    kills: list[dict] = []  # {job, attempt, at, recovered}
    next_kill, spawned = started + args.kill_every, args.workers
    final = (Job.Status.SUCCEEDED, Job.Status.FAILED, Job.Status.CANCELLED)
    try:
        while time.monotonic() - started < args.deadline:
            states = dict(Job.objects.filter(pk__in=jobs).values_list("pk", "status"))
            for job_id in jobs:
                if states[job_id] == Job.Status.RUNNING and len(training_pids(job_id)) > 1:
                    duplicated.add(job_id)
            now = time.monotonic()
            for kill in kills:
                if kill["recovered"] is None:
                    attempt, status = Job.objects.filter(pk=kill["job"]).values_list("attempt", "status").get()
                    if attempt > kill["attempt"] or status in final:
                        kill["recovered"] = round(now - kill["at"], 1)
            if all(status in final for status in states.values()):
                break
            if now >= next_kill:
                busy = [
                    (
                        w,
                        Job.objects.filter(status=Job.Status.RUNNING, lease_owner__startswith=f"{w.name}/")
                        .values_list("pk", "attempt")
                        .first(),
                    )
                    for w in workers
                ]
                busy = [(w, running) for w, running in busy if running]
                if busy:
                    victim, (job_id, attempt) = rng.choice(busy)
                    victim.kill()
                    workers.remove(victim)
                    kills.append({"job": job_id, "attempt": attempt, "at": time.monotonic(), "recovered": None})
                    workers.append(Worker(f"soak-{spawned}", broker, env=env))
                    spawned += 1
                    print(f"[{now - started:6.1f}s] killed {victim.name} running job {job_id}", flush=True)
                next_kill = time.monotonic() + args.kill_every
            time.sleep(0.5)
    finally:
        for worker in [*workers, beat]:
            worker.kill()
        broker.stop()
    states = dict(Job.objects.filter(pk__in=jobs).values_list("pk", "status"))
    recovered = [k["recovered"] for k in kills if k["recovered"] is not None]
    result = {
        "jobs": args.jobs,
        "workers": args.workers,
        "kill_every_s": args.kill_every,
        "kills": len(kills),
        "finished": sum(s == Job.Status.SUCCEEDED for s in states.values()),
        "failed": sum(s == Job.Status.FAILED for s in states.values()),  # killed --max-failures times
        "lost": sum(s not in final for s in states.values()),
        "duplicated": len(duplicated),
        "resumed_from_checkpoint": JobAttempt.objects.filter(job_id__in=jobs, resumed_from_step__gt=0).count(),
        "recover_s_median": statistics.median(recovered) if recovered else None,
        "recover_s_max": max(recovered) if recovered else None,
        "unrecovered_kills": len(kills) - len(recovered),
        "wall_s": round(time.monotonic() - started, 1),
        "lease_s": float(FAST_RUNTIME["JOB_LEASE_SECONDS"]),
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    sys.exit(0 if result["lost"] == result["duplicated"] == 0 else 1)


if __name__ == "__main__":
    main()
