"""The order workers take queued jobs in, and a queued job's place in it: reads that stay fast at 100,000 jobs.

Fair share: a team's n-th queued job (by priority, then age) waits behind every team's earlier turns, and each
job the team already runs counts as a turn taken, so a team that queues a hundred jobs cannot starve one that
queues one. Turn = the job's rank within its team + the team's running jobs; the queue is ordered by turn, then
priority, age and id.

Raw SQL, because the running count must be joined once per team: as a correlated subquery (what the ORM writes)
Postgres re-counted it for every queued row, seconds at 10,000 queued. On Postgres a worker's claim reads only
each team's first few queued jobs through the partial index job_queue_order (a LATERAL join: teams x candidates
index probes, whatever the queue's length); SQLite (the embedded default, one machine's queue) has no LATERAL and
ranks the whole queue instead. A page's places rank the queued jobs once and return only the rows asked for
(docs/benchmarks.md, bench/queue_scale.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import connection

from teams.models import Team

from .models import Job

_JOBS, _TEAMS = Job._meta.db_table, Team._meta.db_table
_RUNNING = f"SELECT team_id, count(*) AS n FROM {_JOBS} WHERE status = %(running)s GROUP BY team_id"
_WAITING = "status = %(queued)s AND NOT cancel_requested"  # the partial index job_queue_order's condition
_TEAM_ORDER = "priority DESC, created_at, id"

_PLACES = f"""
WITH running AS ({_RUNNING}),
queued AS (
    SELECT id, team_id, priority, created_at, row_number() OVER (PARTITION BY team_id ORDER BY {_TEAM_ORDER}) AS rank
    FROM {_JOBS} WHERE {_WAITING}
),
placed AS (
    SELECT q.id, row_number() OVER (
        ORDER BY q.rank + coalesce(r.n, 0), q.priority DESC, q.created_at, q.id
    ) AS place
    FROM queued q LEFT JOIN running r ON r.team_id = q.team_id
)
SELECT id, place FROM placed
"""

_FRONT_POSTGRES = f"""
WITH running AS ({_RUNNING})
SELECT c.id FROM {_TEAMS} t
CROSS JOIN LATERAL (
    SELECT id, priority, created_at, row_number() OVER (ORDER BY {_TEAM_ORDER}) AS rank
    FROM {_JOBS} WHERE team_id = t.id AND {_WAITING} ORDER BY {_TEAM_ORDER} LIMIT %(limit)s
) c
LEFT JOIN running r ON r.team_id = t.id
ORDER BY c.rank + coalesce(r.n, 0), c.priority DESC, c.created_at, c.id
LIMIT %(limit)s
"""

_FRONT_PORTABLE = f"""
WITH running AS ({_RUNNING}),
queued AS (
    SELECT id, team_id, priority, created_at, row_number() OVER (PARTITION BY team_id ORDER BY {_TEAM_ORDER}) AS rank
    FROM {_JOBS} WHERE {_WAITING}
)
SELECT q.id FROM queued q LEFT JOIN running r ON r.team_id = q.team_id
WHERE q.rank <= %(limit)s
ORDER BY q.rank + coalesce(r.n, 0), q.priority DESC, q.created_at, q.id
LIMIT %(limit)s
"""

_STATES = {"queued": Job.Status.QUEUED.value, "running": Job.Status.RUNNING.value}


def queue_front(limit: int, *, portable: bool | None = None) -> list[int]:
    """The ids of the first `limit` queued jobs in the order workers take them: at most `limit` jobs of each team
    count, since no team's later job can come before its own earlier ones. portable: the SQL every database
    runs (None: that one where LATERAL is missing)."""
    if portable is None:
        portable = connection.vendor != "postgresql"
    with connection.cursor() as cursor:
        cursor.execute(_FRONT_PORTABLE if portable else _FRONT_POSTGRES, {**_STATES, "limit": limit})
        return [row[0] for row in cursor.fetchall()]


def queue_places(job_ids: Iterable[int] | None = None) -> dict[int, int]:
    """{job id: 1-based place in the queue} for the given jobs that are queued (None: every queued job), in one
    query however many jobs wait or are asked about."""
    sql, params = _PLACES, dict(_STATES)
    if job_ids is not None:
        ids = {f"id{i}": int(pk) for i, pk in enumerate(dict.fromkeys(job_ids))}  # SQLite has no = ANY(array)
        if not ids:
            return {}
        sql += " WHERE id IN (" + ", ".join(f"%({name})s" for name in ids) + ")"
        params.update(ids)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return dict(cursor.fetchall())
