"""The studio's command-line client: its REST API from a terminal, with progress bars.

    python -m studio_cli login --url http://studio:8000 --token TOKEN
    python -m studio_cli upload train.tsv --name sst2
    python -m studio_cli submit --dataset 1 --method lora --param epochs=2 --watch
    python -m studio_cli download 7 -o adapter.zip

It runs on a user's machine and talks HTTP only: it imports httpx, tqdm and the standard library, never Django,
Celery or the studio's own packages (tests/studio_cli/test_imports.py checks). Progress bars go to stderr and
stay off when stderr is not a terminal, unless --progress is given.
"""

PROG = "python -m studio_cli"
API_PREFIX = "/api/v1"
