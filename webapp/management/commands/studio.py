import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

WEB_PROCESSES = 2  # a small machine's web side: training wants the cores


class Command(BaseCommand):
    help = "Run the whole studio on this machine: setup, the web server and the Celery workers. Ctrl-C stops all."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))

    def handle(self, *args, port, host, **options):
        call_command("studio_setup")
        celery = [sys.executable, "-m", "celery", "-A", "webapp", "worker", "--loglevel", "INFO"]
        children = [
            # One training job at a time: a second would only halve the speed of both.
            subprocess.Popen(
                [*celery, "-Q", "training", "--concurrency", "1", "-n", "training@%h"], cwd=settings.BASE_DIR
            ),
            # Beat and the lease reaper it feeds, in a small worker of their own (never behind slow work).
            subprocess.Popen(
                [
                    *celery,
                    "-Q",
                    "reaper",
                    "--pool",
                    "solo",
                    "-n",
                    "reaper@%h",
                    "--beat",
                    "--schedule",
                    str(settings.STUDIO_HOME / "celerybeat-schedule"),
                ],
                cwd=settings.BASE_DIR,
            ),
            # Counts, token lengths and playground runs.
            subprocess.Popen(
                [*celery, "-Q", "maintenance", "--pool", "solo", "-n", "maintenance@%h"], cwd=settings.BASE_DIR
            ),
            # A production server, not runserver: under 50 clients runserver's p95 was 987 ms (max 4.9 s) against
            # gunicorn's 730 ms (max 0.96 s). Threads, so a streaming playground reply holds a thread, not a process.
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "webapp.wsgi:application",
                    "--bind",
                    f"{host}:{port}",
                    "--worker-class",
                    "gthread",
                    "--workers",
                    str(WEB_PROCESSES),
                    "--threads",
                    "8",
                    "--timeout",
                    "300",
                    "--graceful-timeout",
                    "10",
                ],
                cwd=settings.BASE_DIR,
            ),
        ]
        # SIGTERM (a service manager, `kill`) and SIGINT stop the children as Ctrl-C in a terminal does, also
        # where a shell started the studio in the background with SIGINT ignored.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: sys.exit(0))
        self.stdout.write(self.style.SUCCESS(f"Studio at http://{host}:{port}/ (Ctrl-C stops it)"))
        try:
            while all(child.poll() is None for child in children):
                time.sleep(0.5)
            self.stderr.write("a studio process exited; stopping the others")
        except (KeyboardInterrupt, SystemExit):
            pass
        finally:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for child in children:
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()  # a task's own children die with it (jobs/child_process.die_with_parent)
                    child.wait()
